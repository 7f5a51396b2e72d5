"""stmltm-nb: when should an LLM consolidate short-term memory (context) into a long-term cartridge?"""

__version__ = "0.1.0"
