"""Simulated room impulse responses by the image-source method (pyroomacoustics), laid out like RIRS_NOISES."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from wesv.corpus.phones import SAMPLE_RATE

# Room classes of RIRS_NOISES' simulated_rirs: (length/width range in m, height range in m, RT60 range in s);
# big rooms cannot be very dry, so their RT60 range starts higher.
ROOM_CLASSES = {
    "smallroom": ((2.5, 10.0), (2.4, 3.5), (0.2, 0.8)),
    "mediumroom": ((10.0, 30.0), (3.0, 6.0), (0.3, 0.9)),
    "largeroom": ((30.0, 50.0), (5.0, 12.0), (0.5, 1.0)),
}
MAX_ORDER = 40  # cap on reflection order: keeps small reverberant rooms fast; the correction pass fixes RT60


def _build_room(dims: np.ndarray, rt60: float, src: np.ndarray, mic: np.ndarray):
    import pyroomacoustics as pra

    for _ in range(20):  # Sabine has no solution for a too-dry big room: ask for a bit more reverb
        try:
            absorption, order = pra.inverse_sabine(rt60, dims.tolist())
            break
        except ValueError:
            rt60 *= 1.15
    room = pra.ShoeBox(dims.tolist(), fs=SAMPLE_RATE, materials=pra.Material(min(float(absorption), 0.99)),
                       max_order=min(order, MAX_ORDER))
    room.add_source(src.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    return room


def simulate_rir(rng: np.random.Generator, dims: np.ndarray, rt60: float) -> tuple[np.ndarray, float]:
    """One RIR for a random source/microphone placement in a shoebox room; returns ``(rir, measured_rt60)``.

    Sabine's formula and a capped image order miss the target RT60, so up to three more simulations rescale the
    request by the last measurement.
    """
    margin = 0.5
    src = rng.uniform(margin, dims - margin)
    mic = rng.uniform(margin, dims - margin)
    room = _build_room(dims, rt60, src, mic)
    measured = float(room.measure_rt60()[0][0])
    request = rt60
    for _ in range(3):
        if not measured > 0 or abs(measured - rt60) <= 0.1 * rt60:
            break
        request = float(np.clip(request * rt60 / measured, 0.05, 4.0))
        room = _build_room(dims, request, src, mic)
        measured = float(room.measure_rt60()[0][0])
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    rir = rir[: int(1.2 * max(measured, rt60) * SAMPLE_RATE) + int(np.argmax(np.abs(rir)))]
    return rir / (np.max(np.abs(rir)) + 1e-12) * 0.9, measured


def write_rir_set(out_dir: str, rng: np.random.Generator, rooms_per_class: int, rirs_per_room: int) -> dict[str, str]:
    """Write ``out_dir/simulated_rirs/<class>/RoomNNN/RoomNNN-KKKKK.wav`` and return ``{key: path}``.

    Keys follow the WeSpeaker convention for RIRS_NOISES (the last three path parts), see ``prepare_rirs``.
    """
    entries: dict[str, str] = {}
    info_lines = []
    for cls, (side, height, rt60_range) in ROOM_CLASSES.items():
        for r in range(1, rooms_per_class + 1):
            dims = np.array([rng.uniform(*side), rng.uniform(*side), rng.uniform(*height)])
            rt60 = float(rng.uniform(*rt60_range))
            room = f"Room{r:03d}"
            room_dir = os.path.join(out_dir, "simulated_rirs", cls, room)
            os.makedirs(room_dir, exist_ok=True)
            for k in range(1, rirs_per_room + 1):
                rir, measured = simulate_rir(rng, dims, rt60)
                name = f"{room}-{k:05d}.wav"
                path = os.path.abspath(os.path.join(room_dir, name))
                sf.write(path, rir.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
                key = f"{cls}/{room}/{name}"
                entries[key] = path
                info_lines.append(f"{key} {dims[0]:.2f}x{dims[1]:.2f}x{dims[2]:.2f} rt60_target={rt60:.3f} "
                                  f"rt60_measured={measured:.3f}\n")
    with open(os.path.join(out_dir, "rir_info.txt"), "w", encoding="utf-8") as f:
        f.writelines(info_lines)
    return entries
