"""zerosearch: teach LLMs to search with RL, against a simulated search engine."""

__version__ = "0.1.0"
