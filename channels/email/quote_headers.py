"""The lines mail clients put above quoted history, in the languages our approvers write in.

Three shapes: an attribution line ("On <date>, Bob <bob@x> wrote:", Gmail, Apple Mail, Thunderbird, Android,
and their translations), a separator line ("-----Original Message-----", Samsung's "-------- Original message
--------", ProtonMail's "------- Original Message -------", forward markers), and a header block (Outlook's
"From: … / Sent: … / To: … / Subject: …", localised). Every pattern is anchored and free of nested repetition,
so matching a line costs time linear in its (capped) length.
"""

from __future__ import annotations

import re

# --- attribution lines: the whole line, after "> " quote marks were removed ----------------------------------

_ATTRIBUTIONS = [
    r"on\s.+\swrote\s?:?",  # en: Gmail, Apple Mail, iOS, Thunderbird, Yahoo, ProtonMail
    r"-{2,}\s?on\s.+\swrote\s?-{2,}",  # en: Zoho, some Android clients ("---- On … wrote ----")
    r"am\s.+\sschrieb\s.+:",  # de: "Am Mo., 1. Jan. 2024 um 10:00 Uhr schrieb Bob <bob@x>:"
    r".+\sschrieb\s?:",  # de: "Bob <bob@x> schrieb:"
    r"le\s.+\sa\s[ée]crit\s?:",  # fr: "Le lun. 1 janv. 2024 à 10:00, Bob <bob@x> a écrit :"
    r"el\s.+\sescribi[óo]\s?:",  # es: "El lun, 1 ene 2024 a las 10:00, Bob (<bob@x>) escribió:"
    r"il\s.+\sha\sscritto\s?:",  # it: "Il giorno lun 1 gen 2024 alle ore 10:00 Bob <bob@x> ha scritto:"
    r"em\s.+\sescreveu\s?:",  # pt: "Em seg., 1 de jan. de 2024 às 10:00, Bob <bob@x> escreveu:"
    r".+\sescreveu\s?:",  # pt: "Às 10:00 de 01/01/2024, Bob escreveu:"
    r"op\s.+\sschreef\s.+:",  # nl: "Op ma 1 jan. 2024 om 10:00 schreef Bob <bob@x>:"
    r".+\sschreef\s?:",  # nl: "Bob <bob@x> schreef:"
    r".+\sskrev(?:\s.*)?:",  # sv, da, no: "Den mån 1 jan. 2024 kl 10:00 skrev Bob <bob@x>:"
    r".+\snapisa[łl](?:\(a\))?\s?:",  # pl: "pon., 1 sty 2024 o 10:00 Bob <bob@x> napisał(a):"
    r"w\sdniu\s.+\spisze\s?:",  # pl: Thunderbird "W dniu 1.01.2024 o 10:00, Bob pisze:"
    r"\d{4}年\d{1,2}月\d{1,2}日.+[:：]",  # ja Gmail "2024年1月1日(月) 10:00 Bob <bob@x>:", zh Apple "…，Bob 写道："
    r"\d{4}/\d{1,2}/\d{1,2}.+(?:のメール|が書きました|は書きました)[:：]",  # ja Apple Mail, Thunderbird
    r".+(?:写道|寫道)\s?[:：]",  # zh: "Bob <bob@x> 于2024年1月1日周一 10:00写道："
    r".+님이\s작성(?:하였습니다)?\s?[:：]",  # ko
]
ATTRIBUTION = re.compile(r"^(?:" + "|".join(_ATTRIBUTIONS) + r")$", re.IGNORECASE)

# --- separator lines ------------------------------------------------------------------------------------------

_SEPARATOR_NAMES = [
    "original message", "original e-mail", "forwarded message", "begin forwarded message",
    "ursprüngliche nachricht", "originalnachricht", "original-nachricht", "weitergeleitete nachricht",
    "message d'origine", "message d’origine", "message original", "message transféré",
    "mensaje original", "mensaje reenviado",
    "messaggio originale", "messaggio inoltrato",
    "mensagem original", "mensagem encaminhada",
    "oorspronkelijk bericht", "origineel bericht", "doorgestuurd bericht",
    "ursprungligt meddelande", "originalmeddelande", "vidarebefordrat meddelande",
    "wiadomość oryginalna", "oryginalna wiadomość", "przekazana wiadomość",
    "元のメッセージ", "転送されたメッセージ", "原始邮件", "原始郵件", "转发的邮件", "原始信件",
]
_NAMES = "|".join(re.escape(name) for name in _SEPARATOR_NAMES)
SEPARATOR = re.compile(
    rf"^(?:[-_=*]{{2,}}\s?(?:{_NAMES})\s?[-_=*]{{2,}}|(?:begin forwarded message|{_NAMES})\s?:)$", re.IGNORECASE
)
# Decoration left above a header block: Outlook's underscore rule, html2text's "* * *" for <hr>, a dash rule.
RULE = re.compile(r"^(?:_{8,}|-{8,}|=+|(?:\*\s?){3,})$")

# --- header blocks --------------------------------------------------------------------------------------------

_FROM = ["from", "von", "de", "da", "van", "från", "od", "差出人", "发件人", "發件人", "寄件者", "보낸 사람"]
_WHEN = ["sent", "date", "gesendet", "datum", "envoyé", "date d'envoi", "enviado", "enviado el", "enviada",
         "fecha", "enviada em", "enviado em", "data de envio", "inviato", "data", "verzonden", "skickat",
         "wysłano", "送信日時", "日付", "发送时间", "發送時間", "寄件日期", "日期", "보낸 날짜"]
_OTHER = ["to", "cc", "subject", "an", "betreff", "cc", "à", "objet", "para", "asunto", "a", "oggetto",
          "assunto", "aan", "onderwerp", "till", "ämne", "do", "temat", "dw", "宛先", "件名", "收件人", "主题",
          "抄送", "收件者", "主旨", "받는 사람", "제목"]


def _field(names: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in sorted(set(names), key=len, reverse=True))
    return re.compile(rf"^\*?(?:{alternatives})\*?\s?[:：]", re.IGNORECASE)


FROM_FIELD = _field(_FROM)
WHEN_FIELD = _field(_WHEN)
ANY_FIELD = _field(_FROM + _WHEN + _OTHER)


def header_block_at(lines: list[str], index: int) -> bool:
    """True when an Outlook-style quoted header block starts at ``lines[index]``: a From line, then within the
    next four lines a Sent/Date line, every line in between being a header field too."""
    if not FROM_FIELD.match(lines[index]):
        return False
    for line in lines[index + 1: index + 5]:
        if WHEN_FIELD.match(line):
            return True
        if not ANY_FIELD.match(line):
            return False
    return False

# --- the line mobile clients add under the typed text ---------------------------------------------------------

_DEVICE_LINES = [
    r"sent from my .{1,40}", r"sent from (?:outlook|yahoo mail|mail for windows).{0,40}", r"get outlook for .{1,40}",
    r"sent with proton mail.{0,40}", r"sent from proton mail.{0,40}",
    r"von meinem .{1,40} gesendet", r"gesendet von meinem .{1,40}", r"gesendet von .{1,40}",
    r"envoyé de mon .{1,40}", r"envoyé depuis .{1,40}", r"obtenir outlook pour .{1,40}",
    r"enviado desde mi .{1,40}", r"enviado do meu .{1,40}", r"enviado de meu .{1,40}", r"obtener outlook para .{1,40}",
    r"inviato da(?:l mio)? .{1,40}", r"scarica outlook per .{1,40}",
    r"verzonden (?:met|vanaf) mijn .{1,40}", r"verstuurd (?:met|vanaf) mijn .{1,40}",
    r"skickat från min .{1,40}", r"wysłane z (?:mojego )?.{1,40}",
    r".{1,20}から送信", r"发自我的.{1,20}", r"從我的.{1,20}傳送", r"從我的.{1,20}寄出",
]
DEVICE_SIGNATURE = re.compile(r"^(?:" + "|".join(_DEVICE_LINES) + r")$", re.IGNORECASE)
