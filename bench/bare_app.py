"""The baseline: a bare FastAPI app with one JSON GET and one JSON POST, nothing else."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    index_ids: list[str] | None = None


@app.get("/bare")
def bare_get() -> dict[str, object]:
    return {"items": [], "next_page_token": None}


@app.post("/bare")
def bare_post(body: Body) -> dict[str, object]:
    return {"session_id": "ses-1", "index_ids": body.index_ids}
