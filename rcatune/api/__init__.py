"""The control API: the main application starts jobs (fine-tuning, prepare, evaluate, annotation), lists and
promotes registered versions, deploys, rolls back and runs A/B tests over HTTP (`rcatune api`).

It adds no second registry and no second way to compose a run: jobs are `rcatune.jobs` composed from overrides
and run as processes of their own from a durable table (`jobs.py`), models are `rcatune.registry`'s library,
deployments and A/B tests `rcatune.deploy`'s. Callers hold bearer tokens with scopes (`tokens.py`), and every
state-changing call is appended to an audit log (`audit.py`).
"""
