"""The evaluate and review steps: answering the test split for each candidate, the report, the overfitting verdict."""
