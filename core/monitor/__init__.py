"""Monitoring and retraining: service signals, drift against the training data, quality from feedback, triggers."""
