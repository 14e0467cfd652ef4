"""Deployment state: which version serves in which slot, with what share of traffic, where, and the
history of every change. The core owns it (``slots.record``), written in one transaction after a
deployer returns what it provisioned; deployers only provision (an Azure deployment, nothing for a
local record), so the server, rollback and monitoring read one table whatever backend deployed."""
