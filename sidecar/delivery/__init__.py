"""Delivery, what goes when: the pure scheduler (the one owner of per-key state), the pure decision of what an outcome
means, and the dispatcher that admits each attempt (credentials, then a rate grant, then the request) and moves events
between the spool and the sender."""
