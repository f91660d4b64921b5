"""Find the spoken lines of a novel or fan fiction and say who speaks each one.

Used by `python -m tools.roleplay.dialogue` (tools/roleplay/dialogue.py, whose `attribute` sets it
up for a text),
which turns the lines into ShareGPT samples; the tests compare its attributions with hand labels.

What is read:
- script lines, `Name：line` / `Name: line`, one per paragraph; a file counts as a script only
  when a configured character speaks that way in it, so a novel's `看官听说：…` stays narration;
- quoted speech in prose, `“…”`, `「…」` and ASCII `"…"`, with the speaker named before the quote
  (`X道：“…”`, `X笑道：“…”`, `X叫一声“…”`) or after it (`“…”X说。`), and first-person `我说：“…”`.

Attribution is deliberately conservative: a line is given to a character only when the clause that
introduces it names that character as the subject (the name opens the clause, possibly after a
lead-in such as 只见/当下/却说, and is not the object of 看着/对/问/被…). A pronoun is resolved to
the previous speaker only when nothing but connectives separates them in the same paragraph.
Anything else is returned unattributed with a reason, never guessed. Speakers the caller did not
configure are recognised from the text itself (tokens that introduce speech repeatedly, such as
王婆道) so that a change of speaker to one of them is seen rather than glued to the previous
subject.
"""

import collections
import html
import re
from dataclasses import dataclass, field

from tqdm import tqdm

from tools.roleplay import dialogue_script

# A speaker nobody configured but that the text names (e.g. 王婆); `Utterance.hint` holds the name.
OTHER = "<other>"

# Why a quote is not a spoken line (or could not be attributed). Each is a drop reason in reports.
NOT_SPEECH = "non_speech_quote"  # titles, scare quotes, quoted terms
WRITING = "quoted_writing"  # letters, notices, poems read out, proverbs
THOUGHT = "thought"  # 寻思道, 想道, 自言自语: not said to anyone
NO_VERB = "no_speech_verb"  # a sentence in quotes with nothing saying it is speech
UNATTRIBUTED = "unattributed"  # speech whose subject is not a known speaker or is ambiguous
PRONOUN = "unattributed_pronoun"  # 他道/她道 where the referent is not safe to resolve
FIRST_PERSON = "first_person_no_narrator"  # 我道 without --narrator
UNBALANCED = "unbalanced_quote"  # an opening quote mark never closed in its paragraph
STAGE_DIRECTION = "stage_direction"  # a script line without a speaker: narration, a direction
SCENE_BREAK = "scene_break"  # a script direction that moves the scene or time on

# Narration that moves the story to another time or place, or verse that closes a scene: the
# conversation before it is over (却说…, 次日…, 有诗为证, 正是：).
SCENE_SHIFT = re.compile(
    r"(?:^|[。！？!?；;”」\"\s])\s*(?:话说|且说|却说|再说|次日|次早|明日|第二日|当晚|当夜|是夜|是日|"
    r"过了[一两三四五六七八九十数几]+[日天月年]|不觉|不则一日|有诗为证|诗曰|词曰|正是[：:]|但见[：:])"
)
# Narration that takes someone to another place (离了紫石街，迳投县里来): a new scene follows.
PLACE_SHIFT = re.compile(
    r"(?:别了|辞了|离了|迳投|径投|迳奔|径奔|投奔|回到|来到|到得|回至|来至|去了|转过|出得)"
)
# Narration that reports what was said (将打虎的本事说了一遍): the next quote is no answer to the
# last one; the answer was given in the narration.
REPORTED_SPEECH = re.compile(
    r"说了一遍|一一说了|备细说了|细说了|诉说|说知|告诉了|说罢|说毕|分说|答应了|应承了"
)
SCENE_SEPARATOR = re.compile(r"^\s*(?:[*＊#~～\-—=·.]\s*){3,}$")
# HTML paragraphs stored on one line: every <p> or <br> starts a paragraph; other tags are dropped.
HTML_BREAK = re.compile(r"</?p\b[^>]*>|<br\s*/?>|</?div\b[^>]*>", re.IGNORECASE)
HTML_TAG = re.compile(r"<[^<>]{1,200}>")
# Who a line is said to: an object marker and a name right before the speech verb (对武松道).
ADDRESS_MARKERS = re.compile(
    r"(?:对着|对|向|朝|看着|望着|指着|问|叫|唤|与|和|跟|分付|吩咐|回顾|劝)$"
)

QUOTE_PAIRS = {"“": "”", "「": "」", '"': '"'}
ASCII_QUOTE = '"'
SENTENCE_END = "。！？!?…\n"
# Segments of a clause. Not 、: it lists names (与卢俊义、吴用道) inside one segment.
SEGMENT_SEP = re.compile(r"[，,；;：:\s]+")
CJK_LETTER = re.compile(r"[\u3400-\u9fffA-Za-z]")
CHAPTER_HEADING = re.compile(
    r"^\s*(?:第[0-9０-９一二三四五六七八九十百千零〇两]+[回章节卷集幕]|chapter\s+\d+|#)",
    re.IGNORECASE,
)

# The verb that marks a quote as speech, at the end of the clause before the quote. With a colon or
# comma between verb and quote any of these counts; glued straight to the quote only the short
# exclamation forms do (郓哥叫一声“你打我！”).
SPEECH_VERB = re.compile(
    r"(?:[道说问答曰云叫喝骂嚷喊报禀奏告应]|叫得|(?:叫|喝|嚷|喊)一?声|分付|吩咐)$"
)
SPEECH_VERB_GLUED = re.compile(r"(?:[道说]|叫得|(?:叫|喝|嚷|喊)一?声)$")
# Words ending in a speech verb that do not introduce speech.
NOT_A_SPEECH_VERB = re.compile(r"(?:知道|难道|大道|街道|正道|报告|只道)$")
THOUGHT_VERB = re.compile(
    r"(?:想道?|寻思道?|自?忖道?|思量道?|自?思道|暗道|心[中里内下]道|肚里道|自言自语道?|自言自说道?|只道|默念道?)$"
)
THOUGHT_PLACE = re.compile(r"心[中里内下]|肚里|暗暗")
WRITING_VERB = re.compile(
    r"(?:(?:自古|常言|尝言|俗语|古人|古语|圣人)(?:道|说|云)?|写[道着得]?|书[道曰]|批道?|题道?|[诗词赞制]曰|诗云|为证|示曰|念道?|读道?|刻着|上面道)$"
)

# Between a subject and its verb (武松笑道, 宋江大喜便道): nothing here can be a subject.
PREDICATE_WORDS = sorted(
    [
        "便",
        "又",
        "也",
        "却",
        "再",
        "就",
        "只",
        "乃",
        "遂",
        "自己",
        "自",
        "都",
        "假意",
        "低低",
        "悄悄",
        "笑嘻嘻",
        "皆",
        "亦",
        "还",
        "先",
        "才",
        "方",
        "笑",
        "大笑",
        "冷笑",
        "陪笑",
        "笑着",
        "呵呵",
        "哈哈",
        "大喜",
        "喜",
        "大怒",
        "怒",
        "大惊",
        "惊",
        "吃一惊",
        "失惊",
        "叹",
        "叹口气",
        "哭",
        "慌忙",
        "连忙",
        "急忙",
        "忙",
        "急",
        "回",
        "低声",
        "高声",
        "大声",
        "厉声",
        "答",
        "应",
        "问",
        "说",
        "叫",
        "喝",
        "骂",
        "劝",
        "谢",
        "拜",
        "听了",
        "听罢",
        "见了",
        "看了",
        "见说",
        "听得",
        "起身",
        "起来",
        "焦躁",
        "点头",
        "摇头",
        "陪话",
        "一面",
        "随即",
        "当下",
        "口里",
        "口中",
        "心中",
        "跪下",
        "跪着",
        "上前",
        "向前",
        "出来",
        "回头",
        "转身",
        "看着",
        "立住",
        "住了",
        "道",
        "说道",
        "了",
        "着",
        "当时",
        "那里",
        "随後",
        "随后",
        "一声",
    ],
    key=len,
    reverse=True,
)
# Lead-ins that may precede the subject of a clause (只见宋江道, 当下武松笑道).
LEAD_INS = sorted(
    [
        "话说",
        "且说",
        "却说",
        "再说",
        "只说",
        "又说",
        "当下",
        "当时",
        "当日",
        "当晚",
        "当夜",
        "次日",
        "此时",
        "那时",
        "这时",
        "随即",
        "随后",
        "随後",
        "一面",
        "于是",
        "因此",
        "原来",
        "只见",
        "却见",
        "忽见",
        "早见",
        "忽然",
        "少刻",
        "不多时",
        "须臾",
        "良久",
        "看看",
        "后来",
        "後来",
        "是夜",
        "是日",
        "那",
        "这",
        "便",
        "却",
        "又",
        "也",
        "就",
        "再",
        "只",
        "乃",
        "遂",
        "早",
        "正",
    ],
    key=len,
    reverse=True,
)
# A name right after one of these is the object of the clause, not its subject (看着武大道).
OBJECT_MARKERS = re.compile(
    r"(?:、|回顾|看着|看了|望着|指着|指定|指|扯住|拖住|揪住|扶住|对着|对|向|朝|与|和|同|跟|问|叫|唤|请|劝|谢|拜|把|将|替|被|教|分付|吩咐|告诉|见了|辞了|别了)$"
)
# A segment that ends in an object marker and a short name (回顾宣赞): a list may go on after it.
OBJECT_THEN_NAME = re.compile(r"(?:回顾|看着|望着|对着|对|向|唤|叫)[\u4e00-\u9fff]{2,3}$")
# Several people speak at once (宋江，卢俊义…都笑道): no single speaker.
PLURAL_SPEECH = re.compile(r"都|一齐|齐声|同声|皆|众")
# The subject hears the line rather than says it (武松又听得叫声“…”, 只听喊一声): the speaker is
# someone else, unnamed.
# A bare 听得 is not one (武松听得大怒道, 鲁智深听得道: he heard, then spoke).
HEARING = re.compile(r"(?:只|但|忽|又|猛|猛可|隐隐|远远)听得?|(?:只|但|忽)闻")
# A walk back from the verb stops at a clause of time (宋江唤到帐前问时，说道): the main clause
# after it often has another subject, unnamed.
TIME_CLAUSE = re.compile(r"时$")
# A name right after one of these is the subject of what follows (迎见西门庆叫道).
PIVOT_MARKERS = re.compile(r"(?:只见|却见|忽见|迎见|撞见|看见|听得|只听得)$")
# Openings and nouns of a subject nobody configured: demonstratives, counts, common surnames,
# people and titles.
HIDDEN_SUBJECT_START = re.compile(
    r"[那这一两二三四五六七八九十几数众有个某各诸"
    r"张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶"
    r"阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺"
    r"文柴晁阮鲁燕花呼公欧慕解扈时穆樊施索关凌祝栾]"
)
HIDDEN_SUBJECT_PART = re.compile(
    r"[人汉者婆娘嫂妇女哥爷叔伯官军兵客僧尼童徒卒吏差丈翁妻夫母父兄弟姐妹儿孩]|"
    r"知府|知县|太尉|都监|管营|团练|提辖|教头|头领|押司|节级|虞候|长老|先生|大王|寨主|主人|员外|太公|小二|酒保|庄客|丫环"
)
# The next three are matched at a position inside a segment (`pattern.match(text, pos)`), where `^`
# never matches: they must not start with it.
POSSESSIVE = re.compile(r"(?:的|之|家的|手下|身边)")
# 施恩父子商议道, 武松和宋江道: more than one speaker.
JOINT_SUBJECT = re.compile(
    r"(?:和|与|同|并|、|父子|兄弟|弟兄|夫妻|夫妇|母子|二人|两个|三个|众人|等)"
)
PLURAL_PRONOUN = re.compile(r"(?:他们|她们|他两个|她两个|他二人|他三个|他众人)")
THIRD_PERSON = ("他", "她")
FIRST_PERSON_PRONOUN = "我"
# Continuation: 武松道：“…”又道：“…” is the same speaker.
CONTINUATION = re.compile(r"^(?:又|再|复)(?:说|问|笑|叫|喝|骂)?道?[：:，,]?$")
# Connectives that may separate a named line from a 他道 line without hiding a change of speaker.
SAFE_BRIDGE = re.compile(r"^[\s，,。！？!?…又便再也却复就说了笑]*$")

# Speech-introducing tokens found in the text itself (王婆道, 那妇人笑道). Their first and last
# characters exclude predicates that also sit right before 道 (大喜道, 便问道, 寻思道).
SPEAKER_TOKEN = re.compile(
    r"(?:^|[。！？”」\n，、；])((?:那|这)?[\u4e00-\u9fff]{2,4}?)(?:便|又|也|却|再|就)?"
    r"(?:道|说道|问道|答道|叫道|喝道|笑道|骂道)[：:，,]\s*[“「\"]"
)
TOKEN_BAD_FIRST = set(
    "得在便又也却再就只一不都心自口连急慌忙喝叫说问答应回禀告冷笑喜怒哭叹劝谢拜看听见把将对向与和被吃大高寻思肚起跳仰称嘱失发附出常呵两分上下开抬低扯拖指望叉唱道乃遂因众"
)
TOKEN_BAD_LAST = set("了着的得应答告禀谏劝奏笑问喝骂想叫谢报拜看思量说大")
TOKEN_BAD_PART = re.compile(r"口里|口中|心中|肚里|心下|心内|一面|^[闻有听]人")
MIN_TOKEN_COUNT = 2

SCRIPT_LINE = re.compile(
    r"^\s*(?P<name>[^\s：:“”「」\"，。！？、；,.!?()（）]{1,12})\s*[：:]\s*(?P<line>\S.*?)\s*$"
)
# Labels that look like `Name：` but open narration, poems or lists.
SCRIPT_NOT_SPEAKER = re.compile(r"(?:曰|云|示|证|教|员|头|说|正是|但见|听说|话头|旁白|注|按)$")


@dataclass(frozen=True)
class Character:
    """A configured character: the canonical name and every other way the text names them."""

    name: str
    aliases: tuple[str, ...] = ()

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass
class Utterance:
    """One quote or script line, in text order.

    `speaker` is a configured character's name, OTHER (an unconfigured speaker named in `hint`) or
    None; `drop` is None for attributed speech, otherwise the reason it is not usable speech.
    `offset` is the character offset of the line's text in the file after CRLF→LF normalisation."""

    offset: int
    text: str
    paragraph: int
    chapter: int
    gap_chars: int  # narration characters since the previous utterance ended
    speaker: str | None = None
    hint: str | None = None
    drop: str | None = None
    rule: str = (
        ""  # how the speaker was found: script, before, after, continuation, pronoun, narrator
    )
    line: int = 0  # 1-based line of the file (after CRLF→LF) and 1-based column in it
    column: int = 0
    addressee: str | None = (
        None  # who the line is said to, when the text says so (对武松道, (To Penny))
    )
    break_before: str | None = None  # a scene break between the previous utterance and this one
    # Known speakers named in the narration since the previous utterance (the clause that
    # introduces this line included): someone else acting there ends a conversation.
    narration_names: tuple[str, ...] = ()
    malformed: str | None = (
        None  # a script line that had to be repaired (glued_speakers, trailing_text)
    )


@dataclass
class Speakers:
    """Name matching for one text: configured characters, first-person narrator, and speaker
    tokens found in the text itself."""

    characters: tuple[Character, ...]
    narrator: str | None = None
    text_speakers: frozenset[str] = frozenset()
    _by_form: dict = field(init=False, repr=False)
    _forms: re.Pattern = field(init=False, repr=False)

    def __post_init__(self):
        self._by_form = {}
        for character in self.characters:
            for form in character.all_names:
                self._by_form[form] = character.name
        forms = sorted({*self._by_form, *self.text_speakers}, key=len, reverse=True)
        self._forms = (
            re.compile("|".join(map(re.escape, forms))) if forms else re.compile(r"(?!x)x")
        )

    def canonical(self, form: str) -> str | None:
        return self._by_form.get(form)

    def name_at(self, text: str, pos: int) -> str | None:
        """The longest known name (configured or found in the text) starting at `pos`."""
        m = self._forms.match(text, pos)
        return m.group(0) if m else None

    def names_in(self, text: str) -> list[re.Match]:
        return list(self._forms.finditer(text))

    def mask_names(self, text: str) -> str:
        """`text` with every known name blanked out (武都头 must not read as 都, "all")."""
        return self._forms.sub(lambda m: "_" * len(m.group(0)), text)


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF; a leading byte-order mark is removed."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def find_text_speakers(text: str, characters: tuple[Character, ...]) -> frozenset[str]:
    """Tokens that introduce speech at least twice in `text` (王婆道：“, 那妇人笑道：“) and are not
    configured names: the unconfigured speakers of this text."""
    configured = [form for c in characters for form in c.all_names]
    counts = collections.Counter(m.group(1) for m in SPEAKER_TOKEN.finditer(text))
    tokens = collections.Counter()
    for token, n in counts.items():
        token = _strip_lead_ins_keep_demonstrative(token).rstrip("便又也却再就")
        tokens[token] += n
    kept = set()
    for token, n in tokens.items():
        bare = token[1:] if token[:1] in ("那", "这") else token
        if (
            n >= MIN_TOKEN_COUNT
            and len(token) >= 2
            and bare
            and bare[0] not in TOKEN_BAD_FIRST
            and bare[-1] not in TOKEN_BAD_LAST
            and not TOKEN_BAD_PART.search(token)
            and not any(form in token or token in form for form in configured)
        ):
            kept.add(token)
    return frozenset(kept)


def _strip_lead_ins_keep_demonstrative(token: str) -> str:
    pos = 0
    while True:
        new_pos = pos if token.startswith(("那", "这"), pos) else _strip_lead_in(token, pos)
        if new_pos == pos:
            return token[pos:]
        pos = new_pos


def _display_name(token: str) -> str:
    """How an unconfigured speaker is named in samples and reports: 那妇人 and 妇人 are one name."""
    return token[1:] if token[:1] in ("那", "这") and len(token) > 2 else token


def _strip_lead_in(text: str, pos: int) -> int:
    for lead in LEAD_INS:
        if text.startswith(lead, pos):
            return pos + len(lead)
    return pos


def _may_hide_subject(segment: str) -> bool:
    """True when a segment that names no known speaker might still open with a subject we cannot
    name (那大汉, 众囚徒, 张都监, 知府), so reading further back for a subject would be a guess."""
    if _is_predicate_only(segment):
        return False
    bare = segment.lstrip("便又也却只就再")
    return bool(HIDDEN_SUBJECT_START.match(bare) or HIDDEN_SUBJECT_PART.search(bare))


def _is_predicate_only(text: str) -> bool:
    """True when `text` is made only of words that sit between a subject and its verb."""
    pos = 0
    while pos < len(text):
        for word in PREDICATE_WORDS:
            if text.startswith(word, pos):
                pos += len(word)
                break
        else:
            if CJK_LETTER.match(text, pos):
                return False
            pos += 1
    return True


@dataclass
class _Subject:
    speaker: str | None  # canonical name, OTHER, "他", "我", or None when ambiguous
    hint: str | None = None


def _subject_at_start(segment: str, speakers: Speakers) -> tuple[_Subject, int] | None:
    """The subject that opens `segment` (after lead-ins) and where it ends, or None when the
    segment opens with no name or pronoun."""
    pos = 0
    while True:
        if PLURAL_PRONOUN.match(segment, pos):
            return _Subject(None), pos
        form = speakers.name_at(segment, pos)
        if form is not None:
            end = pos + len(form)
            if POSSESSIVE.match(segment, end) or JOINT_SUBJECT.match(segment, end):
                return _Subject(None), end
            canonical = speakers.canonical(form)
            return (_Subject(canonical) if canonical else _Subject(OTHER, _display_name(form))), end
        if segment.startswith(THIRD_PERSON, pos):
            return _Subject("他"), pos + 1
        if segment.startswith(FIRST_PERSON_PRONOUN, pos):
            return _Subject("我"), pos + 1
        new_pos = _strip_lead_in(segment, pos)
        if new_pos == pos:
            return None
        pos = new_pos


def _other_names_are_objects(segment: str, start: int, speakers: Speakers) -> bool:
    """Every name in `segment` after position `start` is the object of a verb (看着X, 对X, 被X)."""
    for m in speakers.names_in(segment):
        if m.start() >= start and not OBJECT_MARKERS.search(segment[: m.start()]):
            return False
    return True


def subject_of_clause(clause: str, speakers: Speakers) -> _Subject:
    """Who speaks, from the clause between the sentence start and the speech verb.

    The segment next to the verb decides when it names someone (as subject, or after a pivot
    like 迎见); otherwise segments are read backwards for the nearest one that opens with a name.
    The search gives up (no speaker) at a segment that may hide a subject nobody configured, at a
    clause of time, and when several people speak at once."""
    segments = SEGMENT_SEP.split(clause)
    last = segments[-1]
    if PLURAL_SPEECH.search(speakers.mask_names(last)):
        return _Subject(None)
    if last:
        names = speakers.names_in(last)
        hearing = HEARING.search(speakers.mask_names(last))
        if hearing and not any(m.start() >= hearing.end() for m in names):
            # 武松又听得叫声“…”: what the subject hears is said by someone the clause does not name.
            return _Subject(None)
        opening = _subject_at_start(last, speakers)
        if opening is not None and opening[1] == len(last) and len(segments) > 1:
            # 回顾宣赞，郝思文道: a bare name after a segment that ends in a name continues a list
            # written with commas (of the ones spoken to, or of joint speakers).
            previous = segments[-2]
            if any(
                m.end() == len(previous) for m in speakers.names_in(previous)
            ) or OBJECT_THEN_NAME.search(previous):
                return _Subject(None)
        if opening is not None:
            subject, end = opening
            if subject.speaker and not _other_names_are_objects(last, end, speakers):
                return _Subject(None)
            return subject
        if names:
            m = names[-1]
            before = last[: m.start()]
            if PIVOT_MARKERS.search(before):
                canonical = speakers.canonical(m.group(0))
                return (
                    _Subject(canonical) if canonical else _Subject(OTHER, _display_name(m.group(0)))
                )
            marker = OBJECT_MARKERS.search(before)
            if not marker:
                return _Subject(None)
            # 看着武大道: the name is the one spoken to; the speaker is earlier in the sentence,
            # unless the words before the object marker are themselves a subject nobody
            # configured (王婆又向武松道): then that unnamed subject speaks.
            if _may_hide_subject(speakers.mask_names(before[: marker.start()])):
                return _Subject(None)
        elif _may_hide_subject(last):
            return _Subject(None)
    for segment in reversed(segments[:-1]):
        if not segment:
            continue
        if TIME_CLAUSE.search(segment):
            return _Subject(None)
        opening = _subject_at_start(segment, speakers)
        if opening is not None:
            return opening[0]
        if _may_hide_subject(segment):
            return _Subject(None)
    return _Subject(None)


def _opens_well(paragraph: str, i: int) -> bool:
    """An ASCII quote where speech usually opens: after a colon or comma, a sentence end, or at the
    start."""
    before = paragraph[:i].rstrip()
    return (
        not before
        or before[-1] in '：:，,。！？!?…”」"'
        or SPEECH_VERB_GLUED.search(before) is not None
    )


def _closes_well(paragraph: str, i: int) -> bool:
    """An ASCII quote where speech usually closes: right after punctuation."""
    return i > 0 and paragraph[i - 1] in "。！？!?…～~，,—-"


SPEECH_INTRO = re.compile(r"[道说问叫喝][：:]")


def _stray_ascii_quotes(paragraph: str) -> set[int]:
    """Positions of ASCII quotes that pair with nothing. With an odd count, the one whose removal
    lets the others pair best (openers where speech opens, closers after punctuation) is stray;
    a stray mark then breaks one quote instead of swapping speech and narration after it."""
    marks = [i for i, ch in enumerate(paragraph) if ch == ASCII_QUOTE]
    if len(marks) % 2 == 0:
        return set()

    def score(kept: list[int]) -> int:
        # A quote whose text holds a speech introduction (陈舟笑道：) swallowed narration.
        return sum(
            _opens_well(paragraph, kept[k])
            + _closes_well(paragraph, kept[k + 1])
            - 2 * bool(SPEECH_INTRO.search(paragraph, kept[k] + 1, kept[k + 1]))
            for k in range(0, len(kept) - 1, 2)
        )

    best = max(range(len(marks)), key=lambda k: (score(marks[:k] + marks[k + 1 :]), k))
    return {marks[best]}


def _find_quotes(paragraph: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Top-level quotes of a paragraph as (open index, close index) pairs, and the (open, end)
    spans of quotes never closed. Inner quotes of another kind stay part of the outer text.

    A stray mark is contained to the sentence it breaks: an ASCII `"` that pairs with nothing is
    skipped (see `_stray_ascii_quotes`), and a second opener of the same kind (“ while a “ is open)
    ends the broken quote there, so the rest of the paragraph is read as it stands instead of with
    speech and narration swapped."""
    quotes, unbalanced = [], []
    open_at, closer = None, None
    in_note = False
    stray = _stray_ascii_quotes(paragraph) if ASCII_QUOTE in paragraph else set()
    for i, ch in enumerate(paragraph):
        # Editors' notes such as 【音“匝”】 quote single characters; they are not speech.
        if ch in "【】":
            in_note = ch == "【"
        elif in_note:
            continue
        elif i in stray:
            unbalanced.append((i, i))
        elif open_at is None:
            if ch in QUOTE_PAIRS:
                open_at, closer = i, QUOTE_PAIRS[ch]
        elif ch == closer:
            quotes.append((open_at, i))
            open_at = None
        elif ch == paragraph[open_at]:
            # A second opener of the same kind: the first was never closed.
            unbalanced.append((open_at, i))
            open_at = i
    if open_at is not None:
        unbalanced.append((open_at, len(paragraph)))
    return quotes, unbalanced


def _sentence_start(text: str) -> int:
    last = max((text.rfind(ch) for ch in SENTENCE_END), default=-1)
    return last + 1


def _classify_before(pre: str) -> tuple[str | None, str | None]:
    """Look at the text right before a quote. Returns (drop reason or None, clause) where the
    clause is the sentence part before the speech verb; (None, None) when no verb introduces it."""
    stripped = pre.rstrip()
    glued = not stripped.endswith(("：", ":", "，", ","))
    head = stripped.rstrip("：:，,").rstrip()
    sentence = head[_sentence_start(head) :]
    if not sentence:
        return None, None
    # 心中想道 / 肚里寻思道 end in a thought verb; 心中暗道 puts the place next to the verb. An
    # earlier 心中 (武松心中大怒，喝道) is a feeling, and the line is still spoken.
    if THOUGHT_VERB.search(sentence) or THOUGHT_PLACE.search(SEGMENT_SEP.split(sentence)[-1]):
        return THOUGHT, None
    if WRITING_VERB.search(sentence):
        return WRITING, None
    verb = (SPEECH_VERB_GLUED if glued else SPEECH_VERB).search(sentence)
    if verb is None or NOT_A_SPEECH_VERB.search(sentence):
        return (NO_VERB if not glued else None), None
    # What stays of a compound verb (说道, 笑道, 大叫道) is a predicate word, skipped later.
    return None, sentence[: verb.start()]


AFTER_SPEAKER = re.compile(
    r"^\s*([^。！？!?，,“”「」\"\n]{1,12}?)(?:说道|问道|答道|笑道|说|道|问|答)[。，！？,.!?]"
)


def _looks_like_non_speech(content: str) -> bool:
    """Titles, terms and scare quotes: short and with no sentence punctuation."""
    return len(content) <= 8 and not re.search(r"[。！？!?，,…]", content)


@dataclass
class _Paragraph:
    text: str
    line: int  # 1-based line of the file
    column: int  # 0-based column of the paragraph's first character in that line
    offset: int  # character offset of the paragraph's first character in the file


def paragraphs_of(text: str) -> list[_Paragraph]:
    """The paragraphs of a text: its lines, and inside a line the HTML paragraphs (<p>…</p>, <br>)
    with their tags removed and entities decoded (offsets then point at the paragraph start)."""
    out = []
    offset = 0
    for line_no, line in enumerate(text.split("\n"), 1):
        if HTML_BREAK.search(line):
            position = 0
            for m in [*HTML_BREAK.finditer(line), None]:
                end = m.start() if m else len(line)
                piece = html.unescape(HTML_TAG.sub("", line[position:end]))
                if piece.strip():
                    out.append(_Paragraph(piece, line_no, position, offset + position))
                if m:
                    position = m.end()
        else:
            out.append(_Paragraph(line, line_no, 0, offset))
        offset += len(line) + 1
    return out


class _Cursor:
    """Where an utterance lies: the paragraph being read and what happened since the last one."""

    def __init__(self):
        self.chapter = 0
        self.narration = 0
        self.pending_break: str | None = None
        self.names: list[str] = []

    def make(
        self, paragraph: _Paragraph, index: int, content: str, number: int, gap: int
    ) -> Utterance:
        utterance = Utterance(
            paragraph.offset + index,
            content,
            number,
            self.chapter,
            gap,
            line=paragraph.line,
            column=paragraph.column + index + 1,
            break_before=self.pending_break,
            narration_names=tuple(dict.fromkeys(self.names)),
        )
        self.pending_break = None
        self.names = []
        return utterance


def parse_text(
    text: str, speakers: Speakers, *, script_mode: bool, progress: bool = False, label: str = ""
) -> list[Utterance]:
    """Every quote (and, in script mode, every `Name：line` and `Name：「line」`) of `text` as an
    Utterance, in order, each either attributed or carrying the reason it is not usable speech."""
    utterances: list[Utterance] = []
    cursor = _Cursor()
    paragraphs = paragraphs_of(text)
    for number, paragraph in enumerate(
        tqdm(paragraphs, desc=label or "paragraphs", unit="par", disable=not progress)
    ):
        if not paragraph.text.strip():
            continue
        if CHAPTER_HEADING.match(paragraph.text):
            cursor.chapter += 1
            cursor.narration = 0
            continue
        if SCENE_SEPARATOR.match(paragraph.text):
            cursor.pending_break = "scene_break"
            continue
        if script_mode:
            lines = _script_lines(paragraph, number, cursor, speakers)
            if lines is not None:
                utterances += lines
                cursor.narration = 0
                continue
        cursor.narration = _parse_prose_paragraph(paragraph, number, cursor, speakers, utterances)
    labels = {u.hint for u in utterances if u.rule == "script" and u.hint}
    _find_vocatives(utterances, speakers, labels)
    return utterances


VOCATIVE_LEAD = (
    r"^\s*(?:(?:oh|hey|hi|okay|ok|well|look|yes|no|um|uh|so|嗯|哎|喂|啊|哦)[\s,，.!！…]+)?"
)


def _find_vocatives(utterances: list[Utterance], speakers: Speakers, labels: set[str]) -> None:
    """A line that opens by naming someone (`Leonard, ready to go?`, `钟离先生，…`) is said to
    them: set its addressee where the clause or a stage direction did not."""
    forms = sorted({*speakers._by_form, *speakers.text_speakers, *labels}, key=len, reverse=True)
    if not forms:
        return
    pattern = re.compile(
        VOCATIVE_LEAD + "(" + "|".join(map(re.escape, forms)) + r")\s*[,，!！:：]", re.IGNORECASE
    )
    for u in utterances:
        if u.drop is not None or u.addressee is not None:
            continue
        m = pattern.match(u.text)
        if m is None:
            continue
        name = speakers.canonical(m.group(1)) or next(
            (f for f in forms if f.lower() == m.group(1).lower()), m.group(1)
        )
        if name != (u.hint if u.speaker == OTHER else u.speaker):
            u.addressee = name


def _script_lines(
    paragraph: _Paragraph, number: int, cursor: _Cursor, speakers: Speakers
) -> list[Utterance] | None:
    """The utterances of a script paragraph (`Name：「…」` or `Name：line`), or None when the
    paragraph is not one."""
    parsed = dialogue_script.parse_paragraph(paragraph.text)
    if parsed is None:
        single = _plain_script_line(paragraph, number, cursor, speakers)
        return None if single is None else [single]
    if parsed.problem == "unbalanced" and not parsed.lines:
        u = cursor.make(
            paragraph, paragraph.text.find("「") + 1, paragraph.text, number, cursor.narration
        )
        u.drop = UNBALANCED
        return [u]
    out = []
    for line in parsed.lines:
        u = cursor.make(
            paragraph, line.start, line.text, number, cursor.narration if not out else 0
        )
        u.malformed = parsed.problem
        if line.direction:
            u.drop = SCENE_BREAK if line.scene_break else STAGE_DIRECTION
        else:
            _name_script_speaker(u, line.name, speakers)
            if line.addressee is not None:
                u.addressee = speakers.canonical(line.addressee) or line.addressee
        out.append(u)
    if parsed.problem == "unbalanced":
        tail = cursor.make(paragraph, parsed.lines[-1].start, paragraph.text, number, 0)
        tail.drop = UNBALANCED
        out.append(tail)
    return out


def _name_script_speaker(utterance: Utterance, name: str, speakers: Speakers) -> None:
    utterance.rule = "script"
    canonical = speakers.canonical(name)
    if canonical is None and name == FIRST_PERSON_PRONOUN:
        canonical = speakers.narrator
    if canonical is not None:
        utterance.speaker = canonical
    else:
        utterance.speaker, utterance.hint = OTHER, name


def _plain_script_line(
    paragraph: _Paragraph, number: int, cursor: _Cursor, speakers: Speakers
) -> Utterance | None:
    m = SCRIPT_LINE.match(paragraph.text)
    if not m or m.group("line")[0] in QUOTE_PAIRS:
        return None
    name = m.group("name")
    if (
        speakers.canonical(name) is None
        and name != FIRST_PERSON_PRONOUN
        and SCRIPT_NOT_SPEAKER.search(name)
    ):
        return None
    utterance = cursor.make(paragraph, m.start("line"), m.group("line"), number, cursor.narration)
    _name_script_speaker(utterance, name, speakers)
    return utterance


def is_script(text: str, characters: tuple[Character, ...]) -> bool:
    """A text is a script when some configured character speaks as `Name：line` or `Name：「line」`
    in it."""
    names = {form for c in characters for form in c.all_names}
    for paragraph in text.split("\n"):
        parsed = dialogue_script.parse_paragraph(paragraph)
        if parsed is not None and any(line.name in names for line in parsed.lines):
            return True
        m = SCRIPT_LINE.match(paragraph)
        if m and m.group("name") in names and m.group("line")[0] not in QUOTE_PAIRS:
            return True
    return False


def _parse_prose_paragraph(
    paragraph: _Paragraph, number: int, cursor: _Cursor, speakers: Speakers, out: list[Utterance]
) -> int:
    """Append the quotes of one prose paragraph to `out`, in text order; return narration
    characters left pending after its last quote (carried into the gap of the next utterance)."""
    text = paragraph.text
    quotes, unbalanced = _find_quotes(text)
    found: list[Utterance] = []
    last_end = 0  # where the text before the next quote starts: paragraph start or a speech quote
    previous: Utterance | None = None  # the last quote in this paragraph that was not a term
    pending = cursor.narration
    events = sorted([(o, c, True) for o, c in quotes] + [(o, e, False) for o, e in unbalanced])
    for index, (open_at, close_at, balanced) in enumerate(events):
        pre = text[last_end:open_at]
        _note_narration(pre, cursor, speakers)
        gap = pending + len(CJK_LETTER.findall(pre))
        if not balanced:
            u = cursor.make(
                paragraph, open_at + 1, text[open_at + 1 : close_at].strip(), number, gap
            )
            u.drop = UNBALANCED
            found.append(u)
            # A lone stray mark is skipped; an unclosed quote ends where the next one opens.
            last_end, pending, previous = max(last_end, close_at + (close_at == open_at)), 0, None
            continue
        content = text[open_at + 1 : close_at].strip()
        next_open = events[index + 1][0] if index + 1 < len(events) else len(text)
        post = text[close_at + 1 : next_open]
        break_before = cursor.pending_break
        utterance = cursor.make(paragraph, open_at + 1, content, number, gap)
        drop, clause = _classify_before(pre)
        if not content or (clause is None and drop is None and _looks_like_non_speech(content)):
            # Terms inside narration do not interrupt the clause they sit in (nor carry a break).
            utterance.drop = NOT_SPEECH
            utterance.break_before, cursor.pending_break = None, break_before
            found.append(utterance)
            continue
        if drop is not None:
            utterance.drop = drop
        elif clause is not None:
            utterance.rule = "before"
            _attribute(utterance, clause, speakers, previous, pre)
        else:
            after = AFTER_SPEAKER.match(post)
            sentence_start = not pre.strip() or pre.rstrip()[-1] in SENTENCE_END + '”」"'
            if after and sentence_start:
                utterance.rule = "after"
                _attribute(utterance, after.group(1), speakers, None, "")
            else:
                utterance.drop = NO_VERB if not _looks_like_non_speech(content) else NOT_SPEECH
        found.append(utterance)
        last_end = close_at + 1
        pending = 0
        previous = utterance
    tail = text[last_end:] if events else text
    _note_narration(tail, cursor, speakers)
    out.extend(found)
    return pending + len(CJK_LETTER.findall(tail))


def _note_narration(narration: str, cursor: "_Cursor", speakers: Speakers) -> None:
    """Record in `cursor` what a stretch of narration says about the conversation around it."""
    if not narration.strip():
        return
    if SCENE_SHIFT.search(narration) or PLACE_SHIFT.search(narration):
        cursor.pending_break = cursor.pending_break or "scene_break"
    elif REPORTED_SPEECH.search(narration):
        cursor.pending_break = cursor.pending_break or "reported_speech"
    for m in speakers.names_in(narration):
        cursor.names.append(speakers.canonical(m.group(0)) or _display_name(m.group(0)))


def addressee_of_clause(clause: str, speakers: Speakers) -> str | None:
    """Who the clause says the line is spoken to (武松对宋江道 → 宋江), or None when it does not
    say."""
    last = SEGMENT_SEP.split(clause)[-1]
    for m in reversed(speakers.names_in(last)):
        if ADDRESS_MARKERS.search(last[: m.start()]):
            return speakers.canonical(m.group(0)) or _display_name(m.group(0))
    return None


def _attribute(
    utterance: Utterance, clause: str, speakers: Speakers, previous: Utterance | None, pre: str
) -> None:
    """Fill speaker/hint/drop of `utterance` from the clause that introduces it. `previous` is the
    speech quote right before it in the same paragraph, `pre` the text between the two."""
    subject = subject_of_clause(clause, speakers)
    utterance.addressee = addressee_of_clause(clause, speakers)
    attributed_before = previous is not None and previous.drop is None
    if subject.speaker == "他":
        bridge = pre[: min(i for i in (pre.find("他"), pre.find("她")) if i >= 0)]
        if attributed_before and previous.speaker != OTHER and SAFE_BRIDGE.match(bridge):
            utterance.speaker, utterance.rule = previous.speaker, "pronoun"
        else:
            utterance.drop = PRONOUN
    elif subject.speaker == "我":
        if speakers.narrator:
            utterance.speaker, utterance.rule = speakers.narrator, "narrator"
        else:
            utterance.drop = FIRST_PERSON
    elif subject.speaker is not None:
        utterance.speaker, utterance.hint = subject.speaker, subject.hint
    elif attributed_before and CONTINUATION.match(pre.strip()):
        utterance.speaker, utterance.hint, utterance.rule = (
            previous.speaker,
            previous.hint,
            "continuation",
        )
    else:
        utterance.drop = UNATTRIBUTED
