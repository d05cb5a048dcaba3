"""A deck's charts and SmartArt diagrams: their text and figures are what a slide says, and python-pptx's text frames
leave them out. Charts are written by python-pptx, a diagram's data part from its XML, as PowerPoint writes it."""

from __future__ import annotations

import io

import pptx
from lxml import etree
from pptx.chart.data import CategoryChartData
from pptx.enum.chart import XL_CHART_TYPE
from pptx.opc.constants import CONTENT_TYPE as CT
from pptx.opc.constants import RELATIONSHIP_TYPE as RT
from pptx.opc.package import Part
from pptx.opc.packuri import PackURI
from pptx.util import Inches

from pipeline.types import RawDocument
from tests.unit.test_formats_office import only_doc, read_all, write

DGM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def diagram_data(points: list[str]) -> bytes:
    pts = "".join(
        f'<dgm:pt modelId="{n}"><dgm:t><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></dgm:t></dgm:pt>'
        for n, text in enumerate(points, 1)
    )
    return f'<dgm:dataModel xmlns:dgm="{DGM}" xmlns:a="{A}"><dgm:ptLst>{pts}</dgm:ptLst></dgm:dataModel>'.encode()


def deck_with_graphics(data_part: bytes | None = None) -> bytes:
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Results"
    chart_data = CategoryChartData()
    chart_data.categories = ["North", "South"]
    chart_data.add_series("Revenue", (12.0, 7.5))
    frame = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1), Inches(4), Inches(3), chart_data
    )
    frame.chart.has_title = True
    frame.chart.chart_title.text_frame.text = "Revenue by region"
    part = Part(
        PackURI("/ppt/diagrams/data1.xml"),
        CT.DML_DIAGRAM_DATA,
        deck.part.package,
        data_part or diagram_data(["Plan the quay", "Build the cranes"]),
    )
    rel_id = slide.part.relate_to(part, RT.DIAGRAM_DATA)
    graphic = etree.fromstring(
        f'<p:graphicFrame xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="{A}"'
        f' xmlns:r="{R}"><p:nvGraphicFramePr><p:cNvPr id="99" name="Diagram"/><p:cNvGraphicFramePr/><p:nvPr/>'
        '</p:nvGraphicFramePr><p:xfrm><a:off x="0" y="0"/><a:ext cx="10" cy="10"/></p:xfrm><a:graphic>'
        f'<a:graphicData uri="{DGM}"><dgm:relIds xmlns:dgm="{DGM}" r:dm="{rel_id}" r:lo="" r:qs="" r:cs=""/>'
        "</a:graphicData></a:graphic></p:graphicFrame>"
    )
    slide.shapes._spTree.append(graphic)
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_a_charts_title_and_figures_and_a_diagrams_text_are_read(tmp_path):
    doc = only_doc(write(tmp_path, "results.pptx", deck_with_graphics()))
    assert doc.body.splitlines() == [
        "Results",
        "Revenue by region",
        "Revenue: North 12, South 7.5",
        "Plan the quay",
        "Build the cranes",
    ]


def test_a_diagram_that_does_not_parse_loses_its_lines_not_the_deck(tmp_path):
    (doc,) = read_all(write(tmp_path, "broken.pptx", deck_with_graphics(b"<dgm:dataModel unclosed")))
    assert isinstance(doc, RawDocument) and doc.body.splitlines()[:3] == [
        "Results",
        "Revenue by region",
        "Revenue: North 12, South 7.5",
    ]
