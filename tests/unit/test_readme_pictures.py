"""The README shows a picture of every stage, and each picture file is that stage's (no root needed)."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_has_its_picture_in_the_readme():
    links = re.findall(r"!\[stage (\d\d)[^\]]*\]\((docs/pictures/[^)]+\.svg)\)", (ROOT / "README.md").read_text())
    assert {stage for stage, _ in links} == {f"{n:02d}" for n in range(1, 9)}
    for stage, path in links:
        svg = ROOT / path
        assert svg.is_file(), f"README links {path}, which is missing: run tools/readme_pictures.py"
        texts = [t.text or "" for t in ET.parse(svg).iter("{http://www.w3.org/2000/svg}text")]
        assert any(t.startswith(f"stage {stage}:") for t in texts), f"{path} is not stage {stage}'s picture"
