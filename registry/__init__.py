"""lorareg: a registry and lifecycle service for LoRA adapters.

Layers, outermost first (data flows one way):
  cli/, api/, web/  ->  client/  ->  catalog/, compat/, lifecycle/, merge/
                    ->  db/, storage/, formats/
"""

__version__ = "0.1.0"
