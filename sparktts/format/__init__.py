"""The token format between the codec and the LLM: token strings (``tokens``), prompts and training targets
(``prompts``), and the output grammar and its parser (``grammar``). Imports run tokens <- grammar, prompts."""
