"""Lexicon-based sentiment scoring for Chinese and English support messages.

This module owns the `sentiment` derived field: a score in [-1, 1] (negative = unhappy customer)
computed from the ticket text with small hand-written lexicons. It is deliberately simple and
deterministic: the same text gives the same score on every worker and in every replay, with no
model files to ship or version. Rules compare the score against thresholds (for example
`sentiment lte -0.3`), so what matters is the sign and a rough strength, not precision.

How a text is scored:
- Latin words are matched per word (plus a few two-word phrases such as "no problem"); Chinese has
  no spaces, so each run of Chinese characters is split by forward maximum matching against the
  lexicon (longest entry first), which lets "不错" (good) win over "不" (not) and "快递" (courier)
  stay neutral instead of reading as "快" (fast). Neutral compounds are lexicon entries of score 0
  for the same reason: 出差 (business trip) is not 差 (bad), 你好 is a greeting, not praise, and
  不知道 (don't know) negates the verb, not the next sentiment word.
- A negator ("not", "never", "n't", 不, 没, 别 ...) flips and damps the next sentiment word within
  a short window; an intensifier ("very", 非常, 太, 挺 ...) scales it. Clause punctuation ends both.
  A negated intensifier ("not very", 不太, 不是很) does not amplify: "不太满意" is a milder
  complaint than "不满意". A prohibition (别, 不要, clause-initial "don't") does not turn a
  complaint into praise: "别再敷衍了" (stop brushing me off) stays negative.
- Questions are not negations: an A-not-A question (是不是, 有没有, 能不能, 满不满意) is read as
  one neutral token, so "是不是太慢了" (isn't it too slow?) is about slowness; likewise English
  "isn't it ...", "don't you ..." (a negated auxiliary before its subject).
- 好 right before another sentiment word is the intensifier "so" (物流好慢: "so slow"), not
  "good". A few words are only sentiment when graded (degree words): 麻烦 alone is the polite
  "would you mind" (麻烦帮我查一下) but "太麻烦了" is a hassle; 一般, 贵 and 久 likewise. They
  count only after an intensifier or before a degree complement such as 死了 or 极了, which
  strengthens the word before it (烦死了, 麻烦死了).
- After a contrast word ("but", 但是, 不过 ...) the text weighs more than before it, because the
  customer's point usually follows it.
- Exclamation marks strengthen whatever the text already says.
- The raw sum is squashed into (-1, 1) with x / sqrt(x² + 15), so a long rant saturates near -1
  instead of growing without bound.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

# Word scores roughly on a -3..+3 scale: ±1 mild, ±2 clear, ±3 strong.
_EN_WORDS: dict[str, float] = {
    # positive
    "good": 1.9, "great": 3.0, "excellent": 3.2, "awesome": 3.1, "amazing": 2.8,
    "perfect": 2.7, "wonderful": 2.7, "fantastic": 2.6, "best": 3.0, "love": 3.0,
    "loved": 2.9, "happy": 2.5, "glad": 2.0, "pleased": 2.0, "satisfied": 1.8,
    "helpful": 1.8, "thanks": 1.9, "thank": 1.5, "appreciate": 2.0, "appreciated": 2.0,
    "nice": 1.8, "fine": 0.8, "quick": 1.0, "fast": 1.0, "friendly": 2.0,
    "resolved": 1.2, "solved": 1.2, "recommend": 1.5, "smooth": 1.2, "easy": 1.5,
    "polite": 1.5, "patient": 1.5,
    # negative
    "bad": -2.5, "poor": -2.1, "terrible": -3.0, "awful": -3.0, "horrible": -3.0,
    "worst": -3.1, "worse": -2.1, "hate": -2.7, "angry": -2.3, "furious": -3.0,
    "annoyed": -1.8, "frustrated": -2.0, "frustrating": -2.0, "disappointed": -2.0,
    "disappointing": -2.2, "unhappy": -1.8, "upset": -1.6, "unacceptable": -2.5,
    "ridiculous": -2.0, "useless": -2.0, "broken": -1.5, "damaged": -1.5,
    "defective": -2.0, "faulty": -1.8, "wrong": -1.5, "slow": -1.0, "late": -0.8,
    "delayed": -1.0, "missing": -1.0, "lost": -1.2, "scam": -2.9, "fraud": -3.0,
    "rude": -2.2, "incompetent": -2.5, "complaint": -1.5, "complain": -1.5,
    "problem": -0.8, "sucks": -2.0, "waste": -1.8, "garbage": -2.5, "nightmare": -2.5,
    "stuck": -1.0, "failed": -1.5, "fail": -1.5, "error": -0.8, "ignored": -1.8,
}

# Two-word phrases checked before single words, so "no problem" is not "no" + "problem".
_EN_PHRASES: dict[tuple[str, str], float] = {
    ("no", "problem"): 1.0,
    ("no", "worries"): 1.0,
    ("thank", "you"): 2.0,
    ("well", "done"): 2.0,
    ("rip", "off"): -2.5,
}

_EN_NEGATORS = frozenset({
    "not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without", "hardly",
    "barely", "cannot", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent", "cant",
    "couldnt", "wont", "wouldnt", "shouldnt", "havent", "hasnt", "hadnt", "aint",
})

# A negated auxiliary right before its subject asks a question instead of negating: "isn't it too
# slow?", "don't you think this is ridiculous?". Plain "not"/"no"/"never" are never read this way.
_EN_SUBJECTS = frozenset({"it", "this", "that", "you", "they", "he", "she", "we", "there", "i"})
# "don't" opening a clause is a prohibition ("don't waste my time"): it keeps a complaint negative.
_EN_PROHIBITIVES = frozenset({"dont", "don't"})
_EN_CLAUSE_OPENERS = frozenset({"please", "just", "and", "so", "now"})
# A negator right before a verb of knowing negates the verb, not the next sentiment word: "I can't
# believe how rude he was" (compare 不知道, 不明白 below).
_EN_NEGATED_VERBS = frozenset({"believe", "know", "understand", "imagine"})

_EN_INTENSIFIERS: dict[str, float] = {
    "very": 1.3, "really": 1.3, "so": 1.3, "too": 1.2, "extremely": 1.6, "totally": 1.4,
    "absolutely": 1.5, "completely": 1.4, "incredibly": 1.5, "super": 1.4, "highly": 1.4,
    "utterly": 1.6, "pretty": 1.1, "quite": 1.1, "slightly": 0.6, "somewhat": 0.7,
}

_EN_CONTRAST = frozenset({"but", "however", "although", "though", "yet"})

# Chinese entries. Zero-score entries exist only to stop a longer word from being misread through
# its first character: 不好意思 is "excuse me", not 不 + 好; 快递 is a courier, not "fast".
_ZH_WORDS: dict[str, float] = {
    # positive
    "满意": 2.0, "好": 1.0, "好用": 2.0, "好评": 2.0, "不错": 2.0, "棒": 2.0, "赞": 2.0,
    "感谢": 2.0, "谢谢": 2.0, "多谢": 2.0, "喜欢": 2.0, "开心": 2.0, "高兴": 2.0, "专业": 1.8,
    "耐心": 1.8, "及时": 1.5, "给力": 2.2, "完美": 3.0, "优秀": 2.8, "方便": 1.2,
    "解决了": 1.5, "已解决": 1.5, "没问题": 1.0, "放心": 1.5, "靠谱": 2.0, "贴心": 2.0,
    "热情": 2.0, "没关系": 1.0, "不客气": 1.0, "好的": 0.5, "还好": 0.5, "超值": 1.5,
    # negative
    "差": -2.0, "好差": -3.0, "差劲": -3.0, "垃圾": -3.0, "骗子": -3.0, "欺骗": -3.0, "骗": -2.0,
    "坑": -2.0, "坑人": -3.0, "失望": -2.0, "生气": -2.2, "愤怒": -3.0, "怒": -2.5, "气死": -3.0,
    "恶心": -3.0, "无语": -2.0, "无法": -1.0, "投诉": -2.0, "差评": -2.2, "不满": -2.0,
    "慢": -1.0, "坏": -2.0, "坏了": -2.0, "破损": -2.0, "损坏": -2.0, "烂": -2.0, "糟糕": -3.0,
    "担心": -1.0, "着急": -1.5, "郁闷": -2.0, "烦": -2.0, "崩溃": -2.5, "离谱": -2.5,
    "过分": -2.0, "敷衍": -2.5, "推脱": -2.0, "推诿": -2.0, "假货": -3.0, "黑心": -3.0,
    "后悔": -2.0, "可恶": -3.0, "讨厌": -2.5, "难用": -2.0, "卡顿": -1.5, "故障": -1.5,
    "呵呵": -1.0, "哭": -1.5, "忽悠": -2.5, "拖延": -1.5, "拖了": -1.5, "一直没": -1.5,
    "不耐烦": -2.0, "野蛮": -2.0, "差错": -1.5,
    # frequent enough to deserve their own entry instead of negator + word
    "不好": -1.8, "不满意": -2.2, "不行": -1.5,
    # neutral guards: a sentiment character inside a word that means something else
    "不好意思": 0.0, "好久": 0.0, "好像": 0.0, "好几": 0.0, "只好": 0.0, "快递": 0.0,
    "差不多": 0.0, "拖鞋": 0.0, "最好": 0.0, "好不好": 0.0, "相差": 0.0,
    "出差": 0.0, "差旅": 0.0, "差价": 0.0, "补差": 0.0, "差额": 0.0, "差异": 0.0, "差别": 0.0,
    "差距": 0.0, "时差": 0.0, "误差": 0.0, "偏差": 0.0, "差点": 0.0, "差一点": 0.0, "邮差": 0.0,
    "你好": 0.0, "您好": 0.0, "大家好": 0.0, "好友": 0.0, "好处": 0.0, "好多": 0.0, "好些": 0.0,
    "好在": 0.0, "好奇": 0.0, "爱好": 0.0, "刚好": 0.0, "正好": 0.0, "恰好": 0.0, "好好": 0.0,
    "好吗": 0.0, "好吧": 0.0, "好嘛": 0.0, "好么": 0.0, "满意度": 0.0, "烦请": 0.0,
    "方便的话": 0.0, "方便面": 0.0, "慢慢": 0.0, "慢走": 0.0, "认真": 0.0,
    "太太": 0.0, "太阳": 0.0, "很多": 0.0, "最近": 0.0, "最后": 0.0, "最终": 0.0,
    "超时": 0.0, "超过": 0.0, "超出": 0.0, "超市": 0.0, "超重": 0.0, "是否": 0.0,
    # ... and a negator inside a word: 不 negates the verb, not the next sentiment word
    "不管": 0.0, "不用": 0.0, "不知道": 0.0, "不清楚": 0.0, "不明白": 0.0, "不懂": 0.0, "不然": 0.0,
    "不久": 0.0, "不断": 0.0, "不少": 0.0, "不仅": 0.0, "不同": 0.0, "不得不": 0.0, "不一定": 0.0,
    "不小心": 0.0, "没想到": 0.0, "无论": 0.0, "别人": 0.0, "别的": 0.0, "区别": 0.0,
    "分别": 0.0, "级别": 0.0, "类别": 0.0, "告别": 0.0, "未来": 0.0, "未必": 0.0,
}

# Degree words: sentiment only when graded by an intensifier or a degree complement. Alone, 麻烦
# is the polite "would you mind" (麻烦帮我查一下) and 贵 the polite "your" (贵公司); 太麻烦了,
# 好贵, 很一般 and 等了这么久 are complaints.
_ZH_DEGREE_WORDS: dict[str, float] = {"麻烦": -1.6, "一般": -1.0, "贵": -1.0, "久": -1.0, "复杂": -1.0}

# Degree complements strengthen the sentiment word right before them: 烦死了, 差极了, 烂透了.
_ZH_COMPLEMENTS: dict[str, float] = {"死了": 1.5, "死人了": 1.5, "极了": 1.5, "透了": 1.5, "得要命": 1.5}

# 好 right before a sentiment word is the intensifier "so" (好慢, 好失望, 好开心), not "good".
_ZH_HAO = "好"
_ZH_HAO_FACTOR = 1.4
# After an intensifier, 好的 is the adjective 好 + 的 ("挺好的": quite good), not "OK".
_ZH_AFTER_INTENSIFIER: dict[str, float] = {"好的": 1.0}

# A-not-A questions (是不是, 有没有, 能不能, 满不满意) ask instead of negating: X不X / X没X is
# read as one neutral token.
_ZH_ANOTA_MIDDLE = frozenset("不没")

_ZH_NEGATORS = frozenset({"不", "没", "没有", "别", "未", "无", "毫无", "不是", "不要", "从未", "并不",
                          "从没", "从来没", "从来没有", "从不"})

# Prohibitions (别再敷衍了: stop brushing me off) flip praise but never turn a complaint into praise.
_ZH_PROHIBITIVES = frozenset({"别", "别再", "不要", "不要再", "不准", "不许"})
# ... except feelings, where a prohibition reassures: 别担心 (don't worry), 别生气.
_PROHIBITION_REASSURES = frozenset({"担心", "着急", "生气", "upset", "angry"})

# "Never ... so" is emphatic, not negated: "I have never been so disappointed", 从来没这么差过.
_EMPHATIC_NEGATORS = frozenset({"never", "从未", "从没", "从来没", "从来没有"})
_EMPHATIC_INTENSIFIERS = frozenset({"so", "这么", "如此"})

_ZH_INTENSIFIERS: dict[str, float] = {
    "非常": 1.6, "很": 1.3, "太": 1.5, "特别": 1.5, "极其": 1.8, "超级": 1.6, "十分": 1.5,
    "真": 1.3, "真的": 1.3, "相当": 1.4, "最": 1.5, "实在": 1.4, "简直": 1.5, "好不": 1.0,
    "有点": 0.7, "有些": 0.7, "稍微": 0.6, "比较": 0.9, "挺": 1.2, "蛮": 1.2, "超": 1.5,
    "这么": 1.3, "那么": 1.2, "多么": 1.3, "如此": 1.3,
}

_ZH_CONTRAST = frozenset({"但是", "可是", "不过", "但", "然而"})

_EMOJI: dict[str, float] = {
    "😡": -3.0, "🤬": -3.0, "😠": -2.5, "😤": -2.0, "😭": -2.0, "😢": -2.0, "👎": -2.0,
    "💩": -2.0, "🙂": 1.0, "😊": 2.0, "😀": 2.0, "😄": 2.0, "👍": 2.0, "❤": 2.5, "🙏": 1.0,
}

_NEGATION_SCALE = -0.75  # a negated word flips and loses some strength: "not good" < "bad"
_NEGATION_WINDOW = 3  # tokens after a negator that it can still reach ("not very good")
_INTENSIFIER_WINDOW = 2
_BEFORE_CONTRAST = 0.5
_AFTER_CONTRAST = 1.5
_EXCLAMATION_BOOST = 0.3  # per '!' (at most 4), in the direction the text already leans
_SQUASH_ALPHA = 15.0
_CAPS_BOOST = 1.3  # "TERRIBLE" is louder than "terrible"

_NEGATED_INTENSIFIER = 0.9  # "不太满意", "not very good": milder than "不满意", "not good"

# One kind per lexicon entry: ("word", score) | ("deg", score) | ("post", factor) | ("neg", None) |
# ("proh", None) | ("int", factor) | ("contrast", None)
_ZH_LEXICON: dict[str, tuple[str, float | None]] = {}
for _term in _ZH_NEGATORS:
    _ZH_LEXICON[_term] = ("neg", None)
for _term in _ZH_PROHIBITIVES:
    _ZH_LEXICON[_term] = ("proh", None)
for _term, _factor in _ZH_INTENSIFIERS.items():
    _ZH_LEXICON[_term] = ("int", _factor)
for _term in _ZH_CONTRAST:
    _ZH_LEXICON[_term] = ("contrast", None)
for _term, _factor in _ZH_COMPLEMENTS.items():
    _ZH_LEXICON[_term] = ("post", _factor)
for _term, _score in _ZH_DEGREE_WORDS.items():
    _ZH_LEXICON[_term] = ("deg", _score)
for _term, _score in _ZH_WORDS.items():
    _ZH_LEXICON[_term] = ("word", _score)
_ZH_MAX_LEN = max(len(term) for term in _ZH_LEXICON)
# Longest lexicon entry starting with each character. Most characters of a message start no
# entry at all; for them the longest-match loop below is skipped (one dict lookup per character
# instead of one slice and lookup per possible length: build_snapshot's main cost).
_ZH_LONGEST: dict[str, int] = {}
for _term in _ZH_LEXICON:
    _ZH_LONGEST[_term[0]] = max(_ZH_LONGEST.get(_term[0], 0), len(_term))

_TOKEN_RE = re.compile(
    r"(?P<latin>[A-Za-z0-9']+)"
    r"|(?P<cjk>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
    r"|(?P<brk>[.;,:\n。，、；：…!?])"
    r"|(?P<sym>\S)"
)


@dataclass(frozen=True)
class SentimentResult:
    """A score and the terms that produced it (term, contribution), for explaining a score."""

    score: float
    hits: tuple[tuple[str, float], ...]


def _tokens(text: str) -> list[tuple[str, str, float | None, str]]:
    """(kind, term, value, original) per token; kinds: word, deg, post, neg, proh, int, contrast,
    brk, other (see _ZH_LEXICON)."""
    out: list[tuple[str, str, float | None, str]] = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        raw = m.group()
        if kind == "latin":
            word = raw.strip("'").lower()
            if not word:
                continue
            out.append(("latin", word, None, raw))
        elif kind == "cjk":
            i = 0
            length = len(raw)
            start = len(out)  # tokens of this run are out[start:]
            while i < length:
                char = raw[i]
                longest = _ZH_LONGEST.get(char, 0)
                if not longest:
                    out.append(("other", char, None, char))
                    i += 1
                    continue
                if (char in _ZH_ANOTA_MIDDLE and len(out) > start and 0 < i < length - 1
                        and raw[i + 1] == raw[i - 1] and out[-1][3] == raw[i - 1]
                        and raw[i - 1] not in _ZH_ANOTA_MIDDLE):
                    # X不X / X没X: a question (是不是, 有没有), one neutral token
                    question = raw[i - 1:i + 2]
                    out[-1] = ("word", question, 0.0, question)
                    i += 2
                    continue
                for size in range(min(longest, length - i), 0, -1):
                    term = raw[i:i + size]
                    entry = _ZH_LEXICON.get(term)
                    if entry is not None:
                        entry_kind, value = entry
                        if len(out) > start:
                            prev = out[-1]
                            if (prev[1] == _ZH_HAO and prev[0] == "word"
                                    and (entry_kind == "deg" or (entry_kind == "word" and value))):
                                out[-1] = ("int", _ZH_HAO, _ZH_HAO_FACTOR, _ZH_HAO)  # 好慢: "so slow"
                            elif prev[0] == "int" and term in _ZH_AFTER_INTENSIFIER:
                                value = _ZH_AFTER_INTENSIFIER[term]
                        out.append((entry_kind, term, value, term))
                        i += size
                        break
                else:
                    out.append(("other", char, None, char))
                    i += 1
        elif kind == "brk":
            out.append(("brk", raw, None, raw))
        else:
            score = _EMOJI.get(raw)
            out.append(("word", raw, score, raw) if score is not None else ("other", raw, None, raw))
    return _resolve_latin(out)


def _resolve_latin(tokens: list[tuple[str, str, float | None, str]]) -> list[tuple[str, str, float | None, str]]:
    """Classify Latin words, joining the known two-word phrases first."""
    out: list[tuple[str, str, float | None, str]] = []
    i = 0
    while i < len(tokens):
        kind, word, value, raw = tokens[i]
        if kind != "latin":
            out.append(tokens[i])
            i += 1
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt is not None and nxt[0] == "latin" and (word, nxt[1]) in _EN_PHRASES:
            out.append(("word", f"{word} {nxt[1]}", _EN_PHRASES[(word, nxt[1])], f"{raw} {nxt[3]}"))
            i += 2
            continue
        bare = word.replace("'", "")
        if bare in _EN_NEGATORS or word.endswith("n't"):
            if nxt is not None and nxt[0] == "latin" and nxt[1] in _EN_NEGATED_VERBS:
                out.append(("other", word, None, raw))  # "can't believe ...", "don't know ..."
                i += 1
                continue
            if bare != word or bare.endswith("nt"):  # a contracted auxiliary: isn't, dont, can't
                if nxt is not None and nxt[0] == "latin" and nxt[1] in _EN_SUBJECTS:
                    out.append(("other", word, None, raw))  # "isn't it ...?": a question
                    i += 1
                    continue
                prev = out[-1] if out else None
                if word in _EN_PROHIBITIVES and (prev is None or prev[0] in ("brk", "contrast")
                                                 or prev[1] in _EN_CLAUSE_OPENERS):
                    out.append(("proh", word, None, raw))
                    i += 1
                    continue
            out.append(("neg", word, None, raw))
        elif word in _EN_INTENSIFIERS:
            out.append(("int", word, _EN_INTENSIFIERS[word], raw))
        elif word in _EN_CONTRAST:
            out.append(("contrast", word, None, raw))
        elif word in _EN_WORDS:
            out.append(("word", word, _EN_WORDS[word], raw))
        else:
            out.append(("other", word, None, raw))
        i += 1
    return out


def normalise(text: str) -> str:
    """The text as the scorer reads it: NFKC (full-width letters, digits and punctuation from
    Chinese input methods become ASCII) and the typographic apostrophe (’) made plain.

    Casefolded, it is also the form the rules' text operators compare (compiler.fold), so
    build_snapshot normalises a ticket's text once for both. On Chinese text with full-width
    punctuation NFKC is the expensive step, which is why it is shared."""
    if text.isascii():
        return text  # NFKC leaves ASCII alone, and there is no ’ in it
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'")


def analyse(text: str | None, normalised: bool = False) -> SentimentResult:
    """Score `text` and return the contributing terms; empty or missing text scores 0.
    `normalised=True` says `text` already went through `normalise`."""
    if not text:
        return SentimentResult(0.0, ())
    if not normalised:
        text = normalise(text)
    negate_left = 0  # tokens a pending negator can still reach
    negations = 0
    prohibit = False  # the pending negation is a prohibition (别, 不要, "don't")
    emphatic = False  # the pending negation is "never"/从未, which "so"/这么 makes emphatic
    boost_left = 0
    boost = 1.0
    softened = False  # an intensifier under negation: "不太", "not very"
    contributions: list[list] = []  # [term, value, index of the contrast segment]
    last: list | None = None  # the contribution of the token just before, for a degree complement
    last_degree: tuple[str, float] | None = None  # an ungraded degree word just before
    segment = 0
    for kind, term, value, raw in _tokens(text):
        if kind == "post":
            if last is not None:
                last[1] *= value
            elif last_degree is not None:
                last = [last_degree[0], last_degree[1] * value, segment]
                contributions.append(last)
            last_degree = None
            continue
        last = None
        last_degree = None
        if kind == "brk":
            negate_left = boost_left = negations = 0
            prohibit = softened = False
            boost = 1.0
            continue
        if kind == "contrast":
            segment += 1
            negate_left = boost_left = negations = 0
            prohibit = softened = False
            boost = 1.0
            continue
        if kind == "neg" or kind == "proh":
            negations += 1
            prohibit = kind == "proh"
            emphatic = term in _EMPHATIC_NEGATORS
            negate_left = _NEGATION_WINDOW
            continue
        if kind == "int":
            if negate_left > 0 and negations % 2 == 1 and not prohibit:
                if emphatic and term in _EMPHATIC_INTENSIFIERS:
                    negate_left = negations = 0  # "never been so ...": emphasis, not negation
                    boost *= value
                else:
                    softened = True  # "不太满意": the negation scopes over the intensifier
            else:
                boost *= value
            boost_left = _INTENSIFIER_WINDOW
            continue
        if kind == "deg":
            if boost_left > 0:
                kind = "word"  # graded: "太麻烦了"
            else:
                last_degree = (term, value)  # "麻烦帮我…" unless a complement follows: "麻烦死了"
                value = 0.0
                kind = "word"
        if kind == "word":
            contribution = value * (boost if boost_left > 0 else 1.0)
            if raw.isupper() and len(raw) > 1 and raw.isascii():
                contribution *= _CAPS_BOOST
            if negate_left > 0 and negations % 2 == 1 and not (
                    prohibit and contribution < 0 and term not in _PROHIBITION_REASSURES):
                contribution *= _NEGATION_SCALE
                if softened:
                    contribution *= _NEGATED_INTENSIFIER
            if contribution:
                last = [term, contribution, segment]
                contributions.append(last)
            negate_left = boost_left = negations = 0
            prohibit = softened = False
            boost = 1.0
            continue
        # An unrelated token uses up part of a pending negator's or intensifier's reach.
        # (Both counters are never negative; plain tests instead of max() keep this loop, which
        # runs once per character of Chinese text, cheap.)
        if negate_left:
            negate_left -= 1
        if negate_left == 0:
            negations = 0
            prohibit = False
        if boost_left:
            boost_left -= 1
        if boost_left == 0:
            boost = 1.0
            softened = False
    if segment:
        for item in contributions:
            item[1] *= _AFTER_CONTRAST if item[2] == segment else _BEFORE_CONTRAST
    total = sum(item[1] for item in contributions)
    if total:
        bangs = min(text.count("!"), 4)
        total += math.copysign(bangs * _EXCLAMATION_BOOST, total)
    score = total / math.sqrt(total * total + _SQUASH_ALPHA)
    hits = tuple((term, round(value, 3)) for term, value, _ in contributions)
    return SentimentResult(round(max(-1.0, min(1.0, score)), 3), hits)


def score(text: str | None, normalised: bool = False) -> float:
    """Sentiment of `text` in [-1, 1], rounded to 3 decimals (stable in traces and histories)."""
    return analyse(text, normalised).score
