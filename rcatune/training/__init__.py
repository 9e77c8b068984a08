"""Fine-tuning: tokenisation with assistant-only labels, methods (LoRA, QLoRA, full, freeze), trainers."""
