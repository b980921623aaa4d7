"""Read text files (Kaldi lists, trials, scores, JSON reports) with errors a user can act on."""
from wesv.errors import WesvError


def read_text_lines(path: str, what: str, hint: str) -> list[str]:
    """Lines of a UTF-8 text file without the final empty one; ``what`` names the file kind, ``hint`` the fix."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError as err:
        raise WesvError(f"{path}: no such {what} file — {hint}") from err
    except OSError as err:
        raise WesvError(f"{path}: cannot read {what} ({err.strerror}) — {hint}") from err
    except UnicodeDecodeError as err:
        raise WesvError(f"{path}: not UTF-8 text (byte {err.start}) — is this really a {what} file?") from err
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
