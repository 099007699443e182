"""Converters from real sign-language corpora to the hf-sign dataset layout."""
