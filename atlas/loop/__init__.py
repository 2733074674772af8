"""The training loop's rooms: the parts it is built from, one step, the log window, validation, evaluation."""
