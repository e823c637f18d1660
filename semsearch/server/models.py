"""What the API takes, as pydantic models: the search parameters and bodies are derived from
:class:`semsearch.search.SearchOptions`, field by field, so an option, its default and its bounds
exist once, and a new option reaches the HTTP API without being written here."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Annotated, Any, get_origin

from fastapi import HTTPException, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from semsearch.search import OptionSpec, SearchOptions, option_specs, parse_where
from semsearch.server.limits import MAX_QUERIES, MAX_QUERY_CHARS

# JSON has no NaN (Python's parser takes it).
STRICT = ConfigDict(allow_inf_nan=False)
Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]


def _field(spec: OptionSpec, where: Any) -> tuple[Any, Any]:
    """One option as a pydantic field: its type, default, bounds and help."""
    if spec.name == "where":
        form = "KEY=VALUE, repeatable" if get_origin(where) is list else "an object of KEY: VALUE"
        return where, Field(default_factory=where, description=f"{spec.help} Given as {form}.")
    low = spec.low if spec.low is not None else None
    return spec.type, Field(spec.default, description=spec.help,
                            gt=low if spec.open_low else None,
                            ge=None if spec.open_low else low, le=spec.high)


def _options_model(name: str, where: Any) -> type[BaseModel]:
    """A model of every search option, for the routes' models to build on."""
    definitions: dict[str, Any] = {spec.name: _field(spec, where) for spec in option_specs()}
    return create_model(name, __config__=STRICT, **definitions)


class SearchParameters(_options_model("SearchOptionParameters", list[str])):  # type: ignore[misc]
    """GET /search: one query, filters as repeated ``where=KEY=VALUE`` parameters."""

    q: Query = Field(description="The query.")


class SearchBatch(_options_model("SearchOptionFields", dict[str, str])):  # type: ignore[misc]
    """POST /search: a batch of queries, filters as a JSON object."""

    queries: list[Query] = Field(min_length=1, max_length=MAX_QUERIES,
                                 description="The queries, answered in order.")


def search_options(model: BaseModel) -> SearchOptions:
    """The library's options from a validated request (the library checks them once more)."""
    values = {spec.name: getattr(model, spec.name) for spec in option_specs()}
    if isinstance(values["where"], list):
        values["where"] = parse_where(values["where"])
    return SearchOptions(**values)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise HTTPException(400, f"key {key!r} is given twice in one JSON object; give each"
                                     " key once")
        seen.add(key)
    return dict(pairs)


class UniqueKeysRequest(Request):
    """A JSON body with a key twice in one object is refused: the parser would silently keep the
    last (a ``where`` on one key twice would search for one of the two values)."""

    async def json(self) -> object:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=_unique_keys)
        return self._json


class UniqueKeysRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(UniqueKeysRequest(request.scope, request.receive))

        return strict


class NewDocument(BaseModel):
    model_config = STRICT  # a stored NaN would break every answer

    id: str = Field(min_length=1)
    text: str
    title: str = ""
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _finite(cls, metadata: object) -> object:
        """Name the value, where the union's own errors would list every type it is not."""
        for key, value in metadata.items() if isinstance(metadata, dict) else ():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key!r} is {value}, which JSON cannot carry; give null or a"
                                 " string")
        return metadata


class NewDocuments(BaseModel):
    documents: list[NewDocument] = Field(min_length=1, max_length=10_000)


