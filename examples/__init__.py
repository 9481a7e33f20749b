"""wsgisession's examples, installed as the ``wsgisession_examples`` package."""
