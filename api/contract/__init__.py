"""The HTTP contract, declared once as pydantic models: request bodies (`requests`), the objects the API
answers with (`objects`) and the error codes with the one mapping from pydantic's errors (`errors`).

Validation (`validate`), `/openapi.json` (`api.openapi`) and the light client's types
(`inferq/contract_types.py`, written by `codegen`) are all derived from these models.
"""
