"""File formats: PEFT's adapter_config.json, safetensors headers, adapter folders."""
