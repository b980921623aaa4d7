"""Read text files (Kaldi lists, trials, scores, JSON reports) with errors a user can act on."""
from wesv.errors import WesvError, where
from wesv.log import get_logger

log = get_logger(__name__)

BOM = "\ufeff"
BOM_BYTES = BOM.encode("utf-8")


def warn_bom(path: str) -> None:
    """Log that ``path`` starts with a byte-order mark, which is being dropped."""
    log.warning("%s: starts with a UTF-8 byte-order mark (BOM); ignoring it — save the file as plain UTF-8", path)


def bom_error(path: str, lineno: int) -> WesvError:
    """The error for a byte-order mark that is not at the very start of a file."""
    return WesvError(f"{where(path, lineno)}: a UTF-8 byte-order mark (BOM) in the middle of the file (files "
                     "concatenated?) — remove it, e.g. sed -i 's/\\xef\\xbb\\xbf//g' FILE")


def strip_bom(text: str, path: str) -> str:
    """``text`` without a leading BOM (dropped with a warning); a BOM anywhere else raises, naming its line."""
    if text.startswith(BOM):
        warn_bom(path)
        text = text[1:]
    at = text.find(BOM)
    if at >= 0:
        raise bom_error(path, text.count("\n", 0, at) + 1)
    return text


def read_text_lines(path: str, what: str, hint: str) -> list[str]:
    """Lines of a UTF-8 text file without the final empty one; ``what`` names the file kind, ``hint`` the fix."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as err:
        raise WesvError(f"{path}: no such {what} file — {hint}") from err
    except OSError as err:
        raise WesvError(f"{path}: cannot read {what} ({err.strerror}) — {hint}") from err
    except UnicodeDecodeError as err:
        raise WesvError(f"{path}: not UTF-8 text (byte {err.start}) — is this really a {what} file?") from err
    lines = strip_bom(text, path).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_json(path: str, read_hint: str, parse_hint: str) -> object:
    """Parse a JSON file (reports, results); a missing/unreadable or malformed file names itself and the fix."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise WesvError(f"{path}: cannot read ({err.strerror}) — {read_hint}") from err
    except json.JSONDecodeError as err:
        raise WesvError(f"{path}:{err.lineno}: not valid JSON ({err.msg}) — {parse_hint}") from err
