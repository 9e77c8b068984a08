"""Chat templates by name, each marking assistant turns with `{% generation %}` for loss masks.

`model.chat_template: tokenizer` keeps the model's own template (it must have generation markers for
assistant-only loss); a name here replaces it. Formats follow each family's published template.
"""

CHATML = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

LLAMA2 = (
    "{% set system = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' }}"
    "{% if loop.first and system %}{{ '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}{% endif %}"
    "{{ message['content'] | trim + ' [/INST]' }}"
    "{% else %}{% generation %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endgeneration %}{% endif %}"
    "{% endfor %}"
)

MISTRAL = (
    "{% set system = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
    "{{ bos_token }}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + (system + '\\n\\n' if loop.first and system else '') + message['content'] | trim + '[/INST]' }}"
    "{% else %}{% generation %}{{ ' ' + message['content'] | trim + eos_token }}{% endgeneration %}{% endif %}"
    "{% endfor %}"
)

PHI3 = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# Gemma 3: <start_of_turn>user ... <end_of_turn>, the assistant's role is `model`, and a system message is put
# at the head of the first user turn (Gemma has no system role).
GEMMA3 = (
    "{{ bos_token }}"
    "{% set system = messages[0]['content'] | trim + '\\n\\n' if messages[0]['role'] == 'system' else '' %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<start_of_turn>model\\n' }}"
    "{% generation %}{{ message['content'] | trim + '<end_of_turn>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<start_of_turn>' + message['role'] + '\\n' + (system if loop.first else '')"
    " + message['content'] | trim + '<end_of_turn>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "llama2": LLAMA2, "mistral": MISTRAL, "phi3": PHI3,
             "gemma3": GEMMA3}
