"""The Hugging Face Hub's JSON formats, as the Hub-compatible routes answer them.

These models document the contract (``response_model``); the bodies themselves are built
by ``registry.api.hf_documents`` as plain dicts, in exactly the Hub's field names, and
sent as they are (the schema-fuzz test checks the two agree). Field names follow
huggingface_hub's ``ModelInfo``, ``RepoSibling``, ``RepoFile`` and ``RepoFolder``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field


class HubSiblingLfs(BaseModel):
    sha256: str
    size: int
    pointerSize: int


class HubSibling(BaseModel):
    """One file of a model, as ``model_info`` lists it."""

    rfilename: str
    size: int
    blobId: str  # the git blob id of the file's LFS pointer
    lfs: HubSiblingLfs


class HubCardData(BaseModel):
    library_name: str
    tags: list[str]
    base_model: str | None = None  # absent when the version names no base model


class LoraregIdentity(BaseModel):
    """lorareg's own identity of the version, for clients that know to look."""

    version: int
    content_id: str
    base_model: str | None
    exported: bool  # served in export mode with a rewritten adapter_config.json


class HubModelInfo(BaseModel):
    """``GET /api/models/{repo}[/revision/{rev}]``: what ``HfApi.model_info`` parses. The
    commit id (``sha``) is the version's content id (or its export's)."""

    id_: str = Field(alias="_id")
    id: str
    modelId: str
    author: str
    sha: str
    lastModified: str
    createdAt: str
    private: bool
    disabled: bool
    gated: bool
    downloads: int
    likes: int
    library_name: str
    tags: list[str]
    cardData: HubCardData
    siblings: list[HubSibling]
    spaces: list[str]
    usedStorage: int
    lorareg: LoraregIdentity


class HubLastCommit(BaseModel):
    id: str
    title: str
    date: str


class HubTreeLfs(BaseModel):
    oid: str  # the file's sha256
    size: int
    pointerSize: int


class HubTreeFile(BaseModel):
    type: Literal["file"]
    oid: str
    size: int
    path: str
    lfs: HubTreeLfs
    lastCommit: HubLastCommit | None = None  # with ``expand=true`` only


class HubTreeFolder(BaseModel):
    type: Literal["directory"]
    oid: str
    path: str
    lastCommit: HubLastCommit | None = None  # with ``expand=true`` only


# ``tree`` and ``paths-info`` list folders and files, told apart by ``type``.
HubTreeEntry = Annotated[HubTreeFile | HubTreeFolder, Field(discriminator="type")]
