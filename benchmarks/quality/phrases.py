"""Phrasing pools and slot values for the quality benchmark's tasks (tasks.py).

Every phrasing pool comes in two halves: ``train`` (train and validation examples) and ``test``
(test examples only). The halves are written separately, so a test prompt's wording is never seen in
training; tasks.py asserts it. Slot values (products, names, cities...) are content, not phrasing,
and are shared.
"""

from __future__ import annotations

# --- slot values -----------------------------------------------------------------------------------

PRODUCTS = [
    "blender", "desk lamp", "phone case", "yoga mat", "coffee grinder", "air fryer", "bluetooth speaker",
    "electric kettle", "laptop stand", "office chair", "rice cooker", "hair dryer", "water bottle",
    "wall clock", "toaster", "backpack", "running watch", "webcam", "bookshelf", "mattress topper",
    "table fan", "cast iron pan", "standing desk", "gaming mouse", "mechanical keyboard", "tablet cover",
    "baby monitor", "door mat", "bath towel set", "curtain rail", "plant pot", "garden hose",
    "camping stove", "sleeping bag", "drill set", "vacuum cleaner", "pillow", "duvet cover", "photo frame",
    "hand mixer", "milk frother", "bike helmet", "dog bed", "cat tree", "travel adapter", "power bank",
    "ceiling light", "shower head", "knife block", "salad spinner", "ironing board", "suitcase",
    "umbrella", "sunglasses", "wireless charger", "smart plug", "label printer", "tea set", "lunch box",
    "picnic blanket", "rowing machine", "dumbbell set", "jigsaw puzzle", "board game", "paddling pool",
]
CARRIERS = ["DHL", "UPS", "FedEx", "DPD", "GLS", "Royal Mail", "USPS", "Evri", "PostNL", "Canada Post",
            "Australia Post", "La Poste", "Purolator", "Correos", "TNT", "Aramex", "Yodel", "InPost",
            "Chronopost", "Bpost"]
CITIES = [
    "London", "Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Dublin", "Vienna", "Prague", "Warsaw",
    "Budapest", "Athens", "Oslo", "Stockholm", "Helsinki", "Copenhagen", "Amsterdam", "Brussels", "Zurich",
    "Geneva", "Munich", "Hamburg", "Milan", "Naples", "Barcelona", "Seville", "Porto", "Lyon", "Marseille",
    "Krakow", "Istanbul", "Cairo", "Nairobi", "Lagos", "Accra", "Casablanca", "Johannesburg", "Cape Town",
    "Dubai", "Doha", "Mumbai", "Delhi", "Chennai", "Bangalore", "Karachi", "Dhaka", "Bangkok", "Hanoi",
    "Singapore", "Jakarta", "Manila", "Seoul", "Busan", "Tokyo", "Osaka", "Kyoto", "Beijing", "Shanghai",
    "Shenzhen", "Taipei", "Sydney", "Melbourne", "Auckland", "Toronto", "Vancouver", "Montreal", "Chicago",
    "Boston", "Seattle", "Denver", "Austin", "Houston", "Miami", "Atlanta", "New York", "San Francisco",
    "Los Angeles", "Mexico City", "Lima", "Bogota", "Santiago", "Buenos Aires", "Rio de Janeiro",
    "Sao Paulo", "Kuala Lumpur", "Hong Kong", "Tel Aviv", "Abu Dhabi", "Salt Lake City",
]
FIRST_NAMES = [
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
    "Maya", "Nikhil", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wen", "Ximena",
    "Yusuf", "Zoe", "Amara", "Bruno", "Chloe", "Dmitri", "Esther", "Felix", "Gita", "Hassan", "Ingrid",
    "Jamal", "Kira", "Lucas", "Mei", "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Tomas", "Ulla",
    "Viktor", "Wanda", "Yara", "Zain", "Aiko", "Bianca", "Cyrus", "Daria", "Emil", "Fatima", "Gustav",
    "Hana", "Ivan", "Julia", "Kofi", "Leila", "Marco", "Nora", "Omar", "Paula", "Ravi", "Sara", "Theo",
]
SURNAMES = [
    "Kowalski", "Nguyen", "Okafor", "Schmidt", "Rossi", "Garcia", "Silva", "Tanaka", "Kim", "Patel",
    "Novak", "Jensen", "Moreau", "Fischer", "Costa", "Haddad", "Ivanova", "Larsen", "Mendes", "Nakamura",
    "Oliveira", "Petrov", "Quintero", "Romano", "Sato", "Torres", "Urbina", "Varga", "Weber", "Yilmaz",
    "Zhang", "Andersen", "Bauer", "Chen", "Dubois", "Eriksen", "Ferreira", "Gomez", "Horvat", "Ito",
    "Jovanovic", "Keller", "Lopez", "Marino", "Nielsen", "Ortiz", "Popescu", "Ramos", "Santos", "Takahashi",
    "Ueda", "Vidal", "Wagner", "Yamada", "Zimmermann", "Abbasi", "Brennan", "Castillo", "Demir", "Engel",
    "Fontaine", "Gallo", "Holm", "Iqbal", "Kaplan", "Lindqvist", "Mensah", "Nowak", "Osei", "Pereira",
]
ITEMS = [  # (singular, plural): the extraction task's garments, canonical = singular
    ("t-shirt", "t-shirts"), ("hoodie", "hoodies"), ("rain jacket", "rain jackets"), ("fleece", "fleeces"),
    ("polo shirt", "polo shirts"), ("sweater", "sweaters"), ("cardigan", "cardigans"),
    ("denim jacket", "denim jackets"), ("puffer jacket", "puffer jackets"), ("tank top", "tank tops"),
    ("sweatshirt", "sweatshirts"), ("blazer", "blazers"), ("gilet", "gilets"), ("windbreaker", "windbreakers"),
    ("tracksuit", "tracksuits"), ("beanie", "beanies"), ("dress", "dresses"), ("skirt", "skirts"),
    ("raincoat", "raincoats"), ("parka", "parkas"), ("bathrobe", "bathrobes"), ("swimsuit", "swimsuits"),
    ("sports bra", "sports bras"), ("base layer", "base layers"), ("jersey", "jerseys"),
    ("waistcoat", "waistcoats"), ("overshirt", "overshirts"), ("kimono", "kimonos"), ("poncho", "ponchos"),
    ("anorak", "anoraks"), ("henley", "henleys"), ("turtleneck", "turtlenecks"), ("crop top", "crop tops"),
    ("bomber jacket", "bomber jackets"), ("trench coat", "trench coats"), ("quarter-zip", "quarter-zips"),
    ("flannel shirt", "flannel shirts"), ("linen shirt", "linen shirts"), ("cycling jersey", "cycling jerseys"),
    ("softshell jacket", "softshell jackets"),
]
COLOURS = ["black", "white", "navy", "grey", "red", "forest green", "olive", "mustard", "burgundy", "sky blue",
           "royal blue", "teal", "beige", "cream", "charcoal", "lavender", "coral", "pink", "orange", "yellow",
           "brown", "khaki", "maroon", "turquoise", "lilac", "mint", "sand", "rust", "plum", "ivory"]
SIZES = {  # canonical code -> ways of saying it (every one reads after "in")
    "XS": ["XS", "size XS", "extra small", "an XS"], "S": ["S", "size S", "small", "size small"],
    "M": ["M", "size M", "medium", "a medium"], "L": ["L", "size L", "large", "size large"],
    "XL": ["XL", "size XL", "extra large", "an XL"], "XXL": ["XXL", "size XXL", "2XL", "double extra large"],
}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]

# --- task: intent (classification) -------------------------------------------------------------------

INTENT_SYSTEM = ("You sort customer messages for an online shop. Reply with exactly one label: refund, return, "
                 "billing, payment_method, shipping_delay, lost_package, damaged_item, cancel_order, "
                 "change_address or account_access.")
INTENT_CORES: dict[str, dict[str, list[str]]] = {
    "refund": {"train": [
        "I returned the {product} two weeks ago and still haven't got my money back.",
        "Where is my refund for order {order}?",
        "You said the refund for the {product} was approved but nothing has reached my account.",
        "I cancelled order {order} and I'd like the {amount} refunded please.",
        "Can I get a refund instead of store credit for the {product}?",
        "The warehouse confirmed they received my return, so when will I be refunded?",
        "Please put the {amount} back on my card, I sent the {product} back already.",
        "It's been {days} days since you got my return and there's no refund yet.",
        "I want my money back for order {order}.",
        "How long do refunds take to show up after a return is processed?",
        "My return for the {product} was accepted, now I'm waiting on the refund.",
        "Please process the refund for order {order}, the item is already back with you.",
        "I never received the refund for the {product} I sent back.",
        "The {amount} refund you promised for order {order} is missing from my statement.",
    ], "test": [
        "Reimbursement for order {order} still hasn't hit my bank, what's going on?",
        "Your team got the {product} back last week; I expected the {amount} to be credited by now.",
        "Could you transfer the cash for the returned {product} to my account?",
        "Still no sign of the {amount} you owe me after I shipped the {product} over to you.",
        "When will I see the money from my returned {product}?",
        "Nobody has paid me back for order {order} even though the return was logged.",
    ]},
    "return": {"train": [
        "How do I send the {product} back?",
        "I'd like to return the {product} from order {order}, can you email me a return label?",
        "The {product} doesn't fit, what's the return process?",
        "Can I still return something I bought {days} days ago?",
        "I need a return label for order {order}.",
        "Is it possible to drop the {product} off at a store to return it?",
        "I changed my mind about the {product} and want to send it back unopened.",
        "What's your return policy for the {product}?",
        "I want to start a return for order {order}.",
        "Do I have to pay for postage to return the {product}?",
        "The {product} isn't what I expected, I'd like to ship it back to you.",
        "Where do I print the return slip for my {product}?",
        "Can you arrange a pickup so I can return the {product}?",
        "Please open a return for the {product}, it's the wrong size.",
    ], "test": [
        "What are the steps to post the {product} back to your warehouse?",
        "I no longer want the {product}; how can I hand it back to you?",
        "Is there a prepaid shipping label for mailing order {order} back?",
        "The {product} is too small for us, can I mail it back to you?",
        "Am I still inside the window to give back an item bought {days} days ago?",
        "Which address do I use when I package up the {product} to go back?",
    ]},
    "billing": {"train": [
        "I was charged twice for order {order}.",
        "My statement shows {amount} but the {product} was cheaper than that.",
        "Why is there an extra {amount} charge on my invoice?",
        "Can you send me an invoice for order {order}?",
        "There's a charge from you I don't recognise for {amount}.",
        "The price at checkout was lower than what you billed me.",
        "You charged me shipping on order {order} even though it said free delivery.",
        "My invoice has the wrong company name on it.",
        "I see two identical charges of {amount} on my bank statement.",
        "Why was I charged tax on the {product}?",
        "The amount taken from my account doesn't match my order total.",
        "I need a VAT receipt for order {order}.",
        "I got billed {amount} for something I never ordered.",
        "The invoice for the {product} lists the wrong price.",
    ], "test": [
        "Your company took {amount} from me two times for the same purchase.",
        "The total debited for order {order} is higher than the checkout price.",
        "There's a mystery {amount} transaction from your store on my statement.",
        "Please explain the fee added to my bill for the {product}.",
        "Could I get a proper receipt with tax details for order {order}?",
        "I've been overcharged by {amount} on my last purchase.",
    ]},
    "payment_method": {"train": [
        "How do I update the credit card on my account?",
        "Can I pay with PayPal instead of a card?",
        "My card keeps getting declined at checkout.",
        "I want to remove an old card from my saved payment methods.",
        "Do you accept Apple Pay?",
        "My card expired, how do I add the new one?",
        "Can I split the payment for the {product} across two cards?",
        "Is it possible to pay for order {order} by bank transfer?",
        "The checkout won't let me use my debit card.",
        "How do I change my default payment method?",
        "Can I use a gift card together with my credit card?",
        "I'd like to switch the payment for my next order to PayPal.",
        "Do you take American Express?",
        "Where do I add a new card in my account settings?",
    ], "test": [
        "Which wallets can I use at the till online, is Google Pay supported?",
        "My new Visa isn't accepted when I try to buy the {product}.",
        "Please help me swap the saved card for a different one.",
        "Could I settle order {order} with cash on delivery?",
        "I'd rather pay by invoice than by card, is that an option?",
        "Get rid of the old Mastercard stored on my profile, I have a new one.",
    ]},
    "shipping_delay": {"train": [
        "My order {order} was supposed to arrive {days} days ago and tracking still shows it in transit.",
        "Tracking for the {product} is moving but it's behind the estimated date.",
        "Why is my package taking so long? It's still on its way.",
        "The estimated delivery date for order {order} keeps getting pushed back.",
        "It's still in transit after {days} days, when will it get here?",
        "My {product} is late, the site said two-day shipping.",
        "Is there a delay with {carrier} deliveries right now?",
        "Order {order} shipped but it's way past the expected date.",
        "When will my {product} actually arrive? It's overdue.",
        "My parcel is stuck at the sorting centre according to {carrier}.",
        "The delivery of order {order} is running late, any update?",
        "Shipping on my {product} seems really slow, is something wrong?",
        "My package has been in customs for {days} days.",
        "Expected delivery was last week and order {order} is still on its way.",
    ], "test": [
        "Order {order} is behind schedule, the carrier's estimate has slipped again.",
        "Why hasn't the {product} reached me yet? It's {days} days overdue and shows as in transit.",
        "{carrier} keeps saying my parcel is coming but it's well past the promised date.",
        "The {product} is crawling through the postal system, when can I expect it?",
        "My delivery window for order {order} came and went, and tracking just says pending.",
        "Is the holiday backlog why my {product} is arriving late?",
    ]},
    "lost_package": {"train": [
        "Tracking says order {order} was delivered but there's nothing at my door.",
        "My package was marked as delivered yesterday and I never got it.",
        "{carrier} says they delivered my parcel, but it isn't here.",
        "My {product} was stolen from my porch after it was marked delivered.",
        "The courier lost my package for order {order}.",
        "I've checked with my neighbours and nobody has the parcel that was marked delivered.",
        "The delivery photo shows a door that isn't mine and I have no package.",
        "{carrier} told me my parcel is lost in their network.",
        "Order {order} shows delivered to the mailroom but the mailroom has no record of it.",
        "My package disappeared, the tracking number now shows as unknown.",
        "I never received order {order} although it says it was handed over.",
        "The parcel with my {product} went missing after it was scanned at my address.",
        "Someone signed for my {product} but it wasn't me and I don't have it.",
        "Please help, my order {order} has vanished.",
    ], "test": [
        "The app claims the {product} was dropped off today, yet my doorstep is empty.",
        "{carrier} confirmed they can't locate my parcel anywhere.",
        "Order {order} was apparently left at my building but no one here has seen it.",
        "My parcel is gone, it was listed as received while I was away all week.",
        "Where did my {product} go? Proof of delivery says received and I have nothing.",
        "It seems the box for order {order} was misplaced by the courier for good.",
    ]},
    "damaged_item": {"train": [
        "The {product} arrived broken.",
        "My {product} came with a cracked screen.",
        "The box was crushed and the {product} inside is damaged.",
        "Order {order} arrived with a dent in the {product}.",
        "The {product} was shattered when I opened the package.",
        "One of the parts of the {product} snapped off in transit.",
        "The {product} is scratched all over, it looks like it was dropped.",
        "My {product} arrived leaking.",
        "The glass on the {product} was cracked on arrival.",
        "The {product} from order {order} is torn.",
        "I received a damaged {product}, what can you do?",
        "The packaging was soaked and the {product} is ruined.",
        "The {product} had a big chip in it when it arrived.",
        "The casing of the {product} is smashed and it won't turn on.",
    ], "test": [
        "Opened the parcel to find the {product} in pieces.",
        "The {product} showed up bent out of shape from order {order}.",
        "There's a deep crack running across the {product} I just received.",
        "Unboxing the {product} today, it was already busted.",
        "The courier clearly mishandled it; the {product} is wrecked.",
        "My {product} was delivered with its handle broken clean off.",
    ]},
    "cancel_order": {"train": [
        "Please cancel order {order}.",
        "I ordered the {product} by mistake, can you cancel it?",
        "Can I still cancel my order before it ships?",
        "I want to cancel the {product} I ordered this morning.",
        "Cancel order {order}, I don't need it anymore.",
        "I placed a duplicate order, please cancel order {order}.",
        "How do I cancel an order that hasn't shipped yet?",
        "Stop order {order} before it goes out, please.",
        "I'd like to cancel my purchase of the {product}.",
        "Is it too late to cancel order {order}?",
        "Please don't send the {product}, I want to cancel.",
        "I need to cancel the whole order {order}.",
        "Can you call off my order for the {product}?",
        "Cancel everything in order {order}, I found it cheaper elsewhere.",
    ], "test": [
        "Scrap order {order} please, I no longer want it.",
        "Before the {product} leaves your warehouse, kill the order.",
        "I'd like order {order} voided, it was placed accidentally.",
        "Please withdraw my purchase of the {product} right away.",
        "Don't process order {order} any further, I'm backing out.",
        "Is there still time to undo my {product} order entirely?",
    ]},
    "change_address": {"train": [
        "I need to change the delivery address for order {order}.",
        "Can you ship the {product} to my work address instead?",
        "I moved, please update the shipping address on order {order}.",
        "I typed the wrong street name for my {product}, can you fix it?",
        "Please send order {order} to {city} instead of my home.",
        "Can I redirect my package to a different address?",
        "The postcode on order {order} is wrong.",
        "I'd like the {product} delivered to my parents' house instead.",
        "Update the address on my order, I'm moving to {city} next week.",
        "Is it possible to change where order {order} is going?",
        "I entered my old address for the {product}, please correct it.",
        "Please add my apartment number to the address for order {order}.",
        "Can you change the shipping address before the {product} ships?",
        "Deliver order {order} to my office, not my flat.",
    ], "test": [
        "The {product} should go to my new place in {city}, not the old one.",
        "Order {order} has a typo in the house number, please amend it.",
        "Reroute the {product} to my sister's home, please.",
        "I've relocated to {city}; point order {order} at the new location.",
        "Swap the destination on my {product} order to my workplace.",
        "Could the parcel for order {order} be sent somewhere other than what I entered?",
    ]},
    "account_access": {"train": [
        "I can't log in to my account.",
        "I forgot my password and the reset email never arrives.",
        "My account is locked after too many attempts.",
        "How do I reset my password?",
        "The login page says my email isn't registered, but I've ordered before.",
        "I'm not getting the verification code to sign in.",
        "Someone changed my password and I can't get into my account.",
        "I can't access my order history because I'm locked out.",
        "The two-factor code you send me doesn't work.",
        "My account was suspended and I don't know why.",
        "I keep getting an error when I try to sign in.",
        "Can you unlock my account please?",
        "I lost access to the email on my account, how do I log in?",
        "The password reset link says it has expired.",
    ], "test": [
        "Signing in fails every time with an 'invalid credentials' message.",
        "I'm shut out of my profile and can't see order {order}.",
        "The one-time passcode never reaches my phone so I can't get in.",
        "Help me regain entry to my account, it won't accept my details.",
        "My username isn't recognised anymore when I try to enter the site.",
        "After updating the app I'm stuck on the login screen.",
    ]},
}
INTENT_OPENERS = {"train": ["Hi,", "Hello,", "Hey there,", "Good morning,", "Hi team,", "Hello support,",
                            "Quick question:", "Hi, hope you're well.", "Dear customer service,", "Hey,", "Morning!",
                            "Hello again,", "Hi there, I need help.", "Urgent:"],
                  "test": ["Greetings,", "Hiya,", "To whom it may concern,", "Good evening team,",
                           "Sorry to bother you,", "Hi folks,"]}
INTENT_CLOSERS = {"train": ["Thanks.", "Thank you!", "Thanks in advance.", "Cheers.", "Please help.",
                            "Appreciate it.", "Let me know.", "Regards, {name}", "Thanks, {name}",
                            "This is really frustrating.", "Any help is welcome."],
                  "test": ["Many thanks.", "Best, {name}", "Looking forward to your reply.", "Kind regards.",
                           "Speak soon, {name}"]}

# --- task: order_json (extraction) -------------------------------------------------------------------

ORDER_INSTRUCTION = "Extract the order as JSON with the keys item, color, size, quantity, gift_wrap."
ORDER_FRAMES = {"train": [
    "I'd like to order {qty} {color} {items} in {size}.{gift}",
    "Please send me {qty} {items} in {color}, {size}.{gift}",
    "Can I get {qty} {items}? Colour {color}, in {size}.{gift}",
    "Order for {name}: {qtyn} x {item}, {color}, {size}.{gift}",
    "{qty} {items}, {color}, in {size} please.{gift}",
    "Hi, I want the {item} in {color}, {size}, quantity {qtyn}.{gift}",
    "Add {qty} {color} {items} ({size}) to my order.{gift}",
    "I need {qty} {items} for the team, all {color} and all in {size}.{gift}",
    "Put me down for {qty} {items} in {size}, colour {color}.{gift}",
    "My order: {item}, {color}, {size}, {qtyn} pieces.{gift}",
    "Requesting {qty} {items} - colour: {color}, size: {size}.{gift}",
    "We'd like {qty} {color} {items} in {size} for our shop.{gift}",
    "Hello! {qty} {items} please, the {color} ones, in {size}.{gift}",
    "Looking to buy {qty} {color} {items}, {size}.{gift}",
], "test": [
    "Could you reserve {qty} {items} for me? I'd want them {color} and in {size}.{gift}",
    "Grab me {qty} {color} {items}; {size} fits me best.{gift}",
    "In {size} and {color}, I'll gladly take {qty} {items}.{gift}",
    "Thinking of getting {qty} {items}, make them {color}, in {size}.{gift}",
    "Ship {qty} {items} my way, shade {color}, sized {size}.{gift}",
    "For my brother: {qty} {items}, {color} colour, cut in {size}.{gift}",
]}
GIFT_YES = {"train": [" It's a gift, so please gift wrap it.", " Gift wrap please.",
                      " Could you wrap it as a present?", " Please add gift wrapping."],
            "test": [" Pop it in festive wrapping paper, it's a present.", " Make it look like a gift with wrapping."]}
GIFT_NO = {"train": [" No gift wrap needed.", " Don't wrap it, it's for me.", " No wrapping please."],
           "test": [" Skip the present wrapping.", " Plain packaging is fine, nothing fancy."]}

# --- task: normalise (strict-format rewrite) ---------------------------------------------------------

NORMALISE_SYSTEM = ("Rewrite the appointment note in the form YYYY-MM-DD | HH:MM | City | Surname, Firstname "
                    "(24-hour time, names and city capitalised).")
NORMALISE_FRAMES = {"train": [
    "meeting with {person} in {city} on {date} at {time}",
    "{date}, {time} - {person} ({city})",
    "call {person} about the contract, {city} office, {date} {time}",
    "appt: {person} / {city} / {date} / {time}",
    "lunch w/ {person} at {time} on {date} in {city}",
    "{person} is visiting {city} {date}, meet at {time}",
    "remind me: {city}, {date} at {time} with {person}",
    "interview {person} {date} @ {time}, location {city}",
    "site visit in {city} with {person}, {time} on {date}",
    "{time} {date} {city} - meet {person}",
    "dinner on {date} at {time}, {city}, booked by {person}",
    "workshop led by {person}: {city}, {date}, starts {time}",
    "pick up {person} from the station in {city} at {time}, {date}",
    "{person} wants to meet on {date} around {time} in {city}",
], "test": [
    "coffee catch-up: {person}, somewhere in {city}, {date}, {time}",
    "flight lands {city} {date}; {person} collects me at {time}",
    "note to self - {time} on {date}, {person}, {city} branch",
    "{city} business trip: see {person} {date} from {time} onwards",
    "book a room for {person}, {date}, {time} sharp, {city} HQ",
    "on {date} at {time} I'm over in {city} to see {person}",
]}

# --- task: order_status (multi-turn) -----------------------------------------------------------------

STATUS_SYSTEM = ("You are the order-status assistant of an online shop. Answer the customer's last question "
                 "with the requested value only.")
STATUS_FIRST = {"train": ["Hi, can you check order {order}?", "Where is my order {order}?",
                          "Status of order {order} please.", "I'm waiting on order {order}, any news?",
                          "Hello, what's happening with order {order}?", "Could you look up order {order} for me?",
                          "Has order {order} shipped yet?", "Any update on my order {order}?"],
                "test": ["Evening! I'd love an update about order {order}.", "Track order {order} for me, would you?",
                         "I placed order {order} a while back, where has it got to?"]}
STATUS_SECOND = {"train": ["And order {order}?", "What about order {order}?", "Can you also check {order}?",
                           "I have another one too, {order}.", "Thanks. And my order {order}?",
                           "Great, could you do {order} as well?"],
                 "test": ["One more for you: order {order}.", "Lovely, now have a look at {order} too."]}
STATUS_REPLY = {"train": [
    "Order {order} ({product}) shipped on {date} with {carrier}, tracking number {tracking}.",
    "I found order {order}: {product}, sent {date} via {carrier} (tracking {tracking}).",
    "Your order {order} for the {product} left our warehouse on {date}. Carrier: {carrier}. Tracking: {tracking}.",
    "Order {order}: the {product} was dispatched {date} by {carrier}; track it with {tracking}.",
], "test": [
    "Good news, order {order} containing the {product} went out on {date} through {carrier}, reference {tracking}.",
    "{carrier} has had order {order} (the {product}) since {date}; the tracking code is {tracking}.",
]}
STATUS_QUESTIONS = {  # field -> pool -> question frames; {ref} names one of the two orders
    "carrier": {"train": ["Which carrier is delivering {ref}?", "Who is shipping {ref}?",
                          "What courier has {ref}?", "Which company is bringing {ref}?", "{ref}: which carrier?"],
                "test": ["Who's in charge of getting {ref} to my door?", "Tell me the shipping firm for {ref}."]},
    "date": {"train": ["When did {ref} ship?", "What date was {ref} sent?",
                       "On what day did {ref} leave the warehouse?", "When was {ref} dispatched?",
                       "Ship date for {ref}?"],
             "test": ["Remind me which day {ref} went out of the door.", "What day did you post {ref} off?"]},
    "tracking": {"train": ["What's the tracking number for {ref}?", "Can you repeat the tracking for {ref}?",
                           "Give me the tracking code of {ref}.", "Tracking number of {ref} again?",
                           "How do I track {ref}, what's the number?"],
                 "test": ["Which reference do I use to follow {ref}?", "Send me the code to trace {ref} online."]},
    "product": {"train": ["What was in {ref} again?", "Which product is {ref}?", "What did I buy in {ref}?",
                          "Remind me what {ref} contains.", "What item is {ref}?"],
                "test": ["What's packed inside {ref}, I forgot?", "Which article did {ref} have in it?"]},
}
STATUS_REFS = {  # how the last question names an order (shared): by position, by number, by product
    "position": {0: ["the first order", "the first one", "my first order"],
                 1: ["the second order", "the second one", "my second order"]},
    "number": ["order {order}", "{order}", "#{order}"],
    "product": ["the {product} order", "the one with the {product}"],
}
