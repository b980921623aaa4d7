"""Read a Kaldi-style text file (wav.scp, utt2spk, trials, scores) as lines, with errors a user can act on."""
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
