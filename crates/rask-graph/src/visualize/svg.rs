//! SVG writer for a computed [`Layout`].

use std::fmt::{self, Write};

use super::{Direction, FONT_SIZE, Layout, NodeBox, NodeShape, VisGraph};

/// Blank border around the drawing.
const MARGIN: f64 = 16.0;
const TITLE_FONT_SIZE: f64 = 16.0;
/// Height reserved above the drawing for the title, when there is one.
const TITLE_BAND: f64 = 32.0;
/// Length of the arrowhead along the edge; the curve stops this far short of
/// the dependent so that the tip, not the line, touches the node.
const ARROW_LENGTH: f64 = 9.0;
const EDGE_COLOUR: &str = "#555555";
const OUTLINE_COLOUR: &str = "#333333";
/// Used when a node's fill is empty, which would otherwise be invalid CSS.
const DEFAULT_FILL: &str = "#dddddd";
const FONT_FAMILY: &str = "Helvetica, Arial, sans-serif";

pub(crate) fn write_document(graph: &VisGraph, layout: &Layout) -> String {
    let mut out = String::with_capacity(1024 + 260 * graph.nodes.len() + 120 * graph.edges.len());
    // `fmt::Write` for `String` never returns an error; the `Result` only
    // exists because the trait is shared with fallible sinks.
    let _ = write_into(&mut out, graph, layout);
    out
}

fn write_into(out: &mut String, graph: &VisGraph, layout: &Layout) -> fmt::Result {
    let title = graph.title.as_deref().filter(|t| !t.is_empty());
    let band = if title.is_some() { TITLE_BAND } else { 0.0 };
    let title_width = title.map_or(0.0, |t| t.chars().count() as f64 * TITLE_FONT_SIZE * 0.6);
    let content_width = layout.width.max(title_width);
    let width = content_width + 2.0 * MARGIN;
    let height = layout.height + 2.0 * MARGIN + band;
    // Centre the drawing under a title that is wider than it.
    let dx = MARGIN + (content_width - layout.width) / 2.0;
    let dy = MARGIN + band;

    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"{FONT_FAMILY}\" font-size=\"{FONT_SIZE}\">",
        w = Num(width),
        h = Num(height),
    )?;
    if let Some(title) = title {
        out.push_str("<title>");
        escape_xml(out, title);
        out.push_str("</title>\n");
    }
    writeln!(
        out,
        "<defs><marker id=\"rask-arrow\" viewBox=\"0 0 10 10\" refX=\"0\" refY=\"5\" \
         markerUnits=\"userSpaceOnUse\" markerWidth=\"{a}\" markerHeight=\"{a}\" \
         orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{EDGE_COLOUR}\"/></marker></defs>",
        a = Num(ARROW_LENGTH),
    )?;
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    if let Some(title) = title {
        write!(
            out,
            "<text class=\"title\" x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" \
             font-size=\"{TITLE_FONT_SIZE}\" font-weight=\"bold\">",
            x = Num(width / 2.0),
            y = Num(MARGIN + TITLE_FONT_SIZE * 0.8),
        )?;
        escape_xml(out, title);
        out.push_str("</text>\n");
    }

    // Edges first so that nodes are painted over any edge that passes
    // behind them (edges skipping layers are not routed around nodes).
    writeln!(
        out,
        "<g class=\"edges\" fill=\"none\" stroke=\"{EDGE_COLOUR}\" stroke-width=\"1.2\">"
    )?;
    for edge in &graph.edges {
        let (Some(from), Some(to)) = (layout.boxes.get(edge.from), layout.boxes.get(edge.to))
        else {
            // The layout has validated edges; a mismatched layout is skipped
            // rather than allowed to panic.
            continue;
        };
        let shape_of = |i: usize| graph.nodes.get(i).map_or(NodeShape::Data, |n| n.shape);
        let curve = edge_curve(
            from,
            shape_of(edge.from),
            to,
            shape_of(edge.to),
            layout.direction,
        );
        let [p1, c1, c2, p2] = curve.map(|(x, y)| (Num(x + dx), Num(y + dy)));
        writeln!(
            out,
            "<path d=\"M{},{} C{},{} {},{} {},{}\" marker-end=\"url(#rask-arrow)\"/>",
            p1.0, p1.1, c1.0, c1.1, c2.0, c2.1, p2.0, p2.1
        )?;
    }
    out.push_str("</g>\n");

    out.push_str("<g class=\"nodes\" text-anchor=\"middle\">\n");
    for (i, (node, b)) in graph.nodes.iter().zip(&layout.boxes).enumerate() {
        let fill = if node.fill.trim().is_empty() {
            DEFAULT_FILL
        } else {
            node.fill.as_str()
        };
        write!(out, "<g class=\"node\" id=\"node-{i}\"><title>")?;
        escape_xml(out, &node.tooltip);
        out.push_str("</title>");
        let (x, y) = (b.x + dx, b.y + dy);
        match node.shape {
            NodeShape::Task => write!(
                out,
                "<ellipse cx=\"{}\" cy=\"{}\" rx=\"{}\" ry=\"{}\"",
                Num(x),
                Num(y),
                Num(b.width / 2.0),
                Num(b.height / 2.0)
            )?,
            NodeShape::Data => write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\"",
                Num(x - b.width / 2.0),
                Num(y - b.height / 2.0),
                Num(b.width),
                Num(b.height)
            )?,
        }
        out.push_str(" fill=\"");
        escape_xml(out, fill);
        writeln!(out, "\" stroke=\"{OUTLINE_COLOUR}\" stroke-width=\"1\"/>")?;
        // dy=0.35em centres the x-height on the node; `dominant-baseline`
        // would be neater but is ignored by several renderers.
        write!(
            out,
            "<text x=\"{}\" y=\"{}\" dy=\"0.35em\" fill=\"{}\">",
            Num(x),
            Num(y),
            text_colour(fill)
        )?;
        escape_xml(out, &node.label);
        out.push_str("</text></g>\n");
    }
    out.push_str("</g>\n</svg>\n");
    Ok(())
}

/// The cubic Bézier `[start, control1, control2, end]` from the dependency
/// `a` to the dependent `b`, in the layout's frame.
///
/// The curve leaves `a` and enters `b` parallel to the rank axis, so fans of
/// edges read like graphviz splines and the arrowhead always points into the
/// node. Endpoints slide along the node outline towards the other end, by an
/// amount that grows with the edge's slant, so edges into a wide fan-in do not
/// all meet in one point.
fn edge_curve(
    a: &NodeBox,
    a_shape: NodeShape,
    b: &NodeBox,
    b_shape: NodeShape,
    direction: Direction,
) -> [(f64, f64); 4] {
    // Abstract frame: `o` along a layer, `r` along the ranks, with the
    // dependent at a larger `r` than its dependency.
    let to_abstract = |x: f64, y: f64| match direction {
        Direction::BottomToTop => (x, -y),
        Direction::TopToBottom => (x, y),
        Direction::LeftToRight => (y, x),
    };
    let to_xy = |o: f64, r: f64| match direction {
        Direction::BottomToTop => (o, -r),
        Direction::TopToBottom => (o, r),
        Direction::LeftToRight => (r, o),
    };
    let half = |n: &NodeBox| match direction {
        Direction::LeftToRight => (n.height / 2.0, n.width / 2.0),
        _ => (n.width / 2.0, n.height / 2.0),
    };
    let (ao, ar) = to_abstract(a.x, a.y);
    let (bo, br) = to_abstract(b.x, b.y);
    let (a_half_o, a_half_r) = half(a);
    let (b_half_o, b_half_r) = half(b);
    let (d_o, d_r) = (bo - ao, br - ar);
    let length = d_o.hypot(d_r);
    let slant = if length > 0.0 { d_o / length } else { 0.0 };

    // How far the outline reaches along the rank axis at an offset along
    // the layer, as a fraction of the half depth.
    let reach = |shape: NodeShape, frac: f64| match shape {
        NodeShape::Task => (1.0 - frac * frac).max(0.0).sqrt(),
        NodeShape::Data => 1.0,
    };
    let a_off = 0.6 * slant;
    let b_off = -0.6 * slant;
    let start = (ao + a_off * a_half_o, ar + a_half_r * reach(a_shape, a_off));
    let tip = (bo + b_off * b_half_o, br - b_half_r * reach(b_shape, b_off));
    // Stop short by the arrowhead so the marker's tip lands on the outline;
    // the final tangent is along the rank axis, so that is a shift in `r`.
    let end = (tip.0, tip.1 - ARROW_LENGTH);
    let pull = ((end.1 - start.1) / 2.0).max(0.0);
    [
        to_xy(start.0, start.1),
        to_xy(start.0, start.1 + pull),
        to_xy(end.0, end.1 - pull),
        to_xy(end.0, end.1),
    ]
}

/// Black or white, whichever reads better on `fill` (by WCAG relative
/// luminance). Only `#rgb` and `#rrggbb` are understood; any other colour
/// gets black text, which suits the light named colours most often used.
pub fn text_colour(fill: &str) -> &'static str {
    const BLACK: &str = "#000000";
    const WHITE: &str = "#ffffff";
    let hex = fill.trim().strip_prefix('#').unwrap_or("");
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as f64);
    let bytes = hex.as_bytes();
    let rgb = match bytes.len() {
        3 => bytes
            .iter()
            .map(|&c| digit(c).map(|d| d * 17.0))
            .collect::<Option<Vec<f64>>>(),
        6 => bytes
            .chunks(2)
            .map(|p| Some(digit(p[0])? * 16.0 + digit(p[1])?))
            .collect::<Option<Vec<f64>>>(),
        _ => None,
    };
    let Some(rgb) = rgb else {
        return BLACK;
    };
    let linear = |c: f64| {
        let c = c / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2]);
    // Where black and white text have equal contrast ratio.
    if luminance < 0.179 { WHITE } else { BLACK }
}

/// Appends `s` escaped for XML text and attribute values. Characters that
/// XML 1.0 forbids outright (most C0 controls) are dropped, since no escape
/// can make them well-formed.
pub(crate) fn escape_xml(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// Coordinates with one decimal: sub-pixel precision beyond that only
/// inflates large drawings.
struct Num(f64);

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        // Avoid "-0.0", which is valid but looks like a bug.
        let v = if v.abs() < 0.05 { 0.0 } else { v };
        write!(f, "{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{VisEdge, VisError, VisNode, order_colour};
    use super::*;

    /// A minimal XML well-formedness checker: balanced and properly nested
    /// tags, quoted attributes, no raw `<` or stray `&` in text or values.
    /// Returns the element names in document order.
    fn check_well_formed(doc: &str) -> Result<Vec<String>, String> {
        fn check_entities(s: &str, at: usize) -> Result<(), String> {
            let mut rest = s;
            while let Some(i) = rest.find('&') {
                rest = &rest[i + 1..];
                let end = rest.find(';').ok_or(format!("bare & near {at}"))?;
                let name = &rest[..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                    || (name.starts_with('#') && name.len() > 1);
                if !ok {
                    return Err(format!("bad entity &{name}; near {at}"));
                }
            }
            if s.contains('<') {
                return Err(format!("raw < near {at}"));
            }
            Ok(())
        }
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut seen_root = false;
        let mut i = 0;
        let bytes = doc.as_bytes();
        while i < doc.len() {
            let Some(open) = doc[i..].find('<') else {
                if !doc[i..].trim().is_empty() {
                    return Err("text after the root element".into());
                }
                break;
            };
            let text = &doc[i..i + open];
            if stack.is_empty() && !text.trim().is_empty() {
                return Err(format!("text outside the root at {i}"));
            }
            check_entities(text, i)?;
            let start = i + open;
            if doc[start..].starts_with("<?") {
                if seen_root || start != 0 {
                    return Err("misplaced XML declaration".into());
                }
                i = start + doc[start..].find("?>").ok_or("open <?")? + 2;
                continue;
            }
            // Find the end of the tag, skipping `>` inside quoted values.
            let mut j = start + 1;
            let mut quote = None;
            while j < doc.len() {
                let c = bytes[j];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => break,
                    None => {}
                }
                j += 1;
            }
            if j >= doc.len() {
                return Err(format!("unterminated tag at {start}"));
            }
            let inner = &doc[start + 1..j];
            i = j + 1;
            if let Some(name) = inner.strip_prefix('/') {
                let name = name.trim();
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
                continue;
            }
            let self_closing = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name_end = inner
                .find(|c: char| c.is_whitespace())
                .unwrap_or(inner.len());
            let name = &inner[..name_end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("bad element name {name:?}"));
            }
            if stack.is_empty() && seen_root {
                return Err("second root element".into());
            }
            seen_root = true;
            // Attributes: name="value" pairs separated by whitespace.
            let mut attrs = inner[name_end..].trim();
            let mut attr_names = Vec::new();
            while !attrs.is_empty() {
                let eq = attrs
                    .find('=')
                    .ok_or(format!("attribute without = in <{name}>"))?;
                let attr = attrs[..eq].trim();
                if attr.is_empty() || attr.contains(char::is_whitespace) {
                    return Err(format!("bad attribute {attr:?} in <{name}>"));
                }
                if attr_names.contains(&attr) {
                    return Err(format!("duplicate attribute {attr} in <{name}>"));
                }
                attr_names.push(attr);
                let rest = attrs[eq + 1..].trim_start();
                let q = rest.chars().next().ok_or("missing value")?;
                if q != '"' && q != '\'' {
                    return Err(format!("unquoted value for {attr} in <{name}>"));
                }
                let close = rest[1..].find(q).ok_or("unterminated value")?;
                check_entities(&rest[1..1 + close], start)?;
                attrs = rest[close + 2..].trim_start();
            }
            names.push(name.to_string());
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed elements {stack:?}"));
        }
        if !seen_root {
            return Err("no root element".into());
        }
        Ok(names)
    }

    fn sample() -> VisGraph {
        super::super::tests::tree_reduction()
    }

    /// Extracts the numeric value of `attr="..."` from each element `tag`.
    fn attr_values(doc: &str, tag: &str, attr: &str) -> Vec<f64> {
        doc.split(&format!("<{tag} "))
            .skip(1)
            .filter_map(|s| {
                let s = &s[s.find(&format!(" {attr}=\""))? + attr.len() + 3..];
                s[..s.find('"')?].parse().ok()
            })
            .collect()
    }

    #[test]
    fn checker_rejects_broken_xml() {
        assert!(check_well_formed("<a><b></a></b>").is_err());
        assert!(check_well_formed("<a x=1/>").is_err());
        assert!(check_well_formed("<a>1 < 2</a>").is_err());
        assert!(check_well_formed("<a>R&D</a>").is_err());
        assert!(check_well_formed("<a>").is_err());
        assert!(check_well_formed("<a/><b/>").is_err());
        assert!(check_well_formed("<a x=\"1\" x=\"2\"/>").is_err());
        assert!(check_well_formed("<?xml version=\"1.0\"?>\n<a x='&lt;'>&amp;</a>\n").is_ok());
    }

    #[test]
    fn svg_is_well_formed_with_required_root_attributes() {
        for direction in [
            Direction::BottomToTop,
            Direction::TopToBottom,
            Direction::LeftToRight,
        ] {
            let mut g = sample();
            g.direction = direction;
            let svg = g.render_svg().unwrap();
            let names = check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
            assert_eq!(names[0], "svg");
            let root = &svg[svg.find("<svg").unwrap()..];
            let root = &root[..root.find('>').unwrap()];
            assert!(root.contains("xmlns=\"http://www.w3.org/2000/svg\""));
            let w = attr_values(&svg, "svg", "width")[0];
            let h = attr_values(&svg, "svg", "height")[0];
            assert!(
                root.contains(&format!("viewBox=\"0 0 {w:.1} {h:.1}\"")),
                "{root}"
            );
            // One <g> per node plus the two layer groups, all closed.
            assert_eq!(svg.matches("<g ").count(), g.nodes.len() + 2);
            assert_eq!(svg.matches("</g>").count(), g.nodes.len() + 2);
            assert_eq!(svg.matches("marker-end=").count(), g.edges.len());
            assert!(svg.contains("<marker id=\"rask-arrow\""));
            // Every node lies on the canvas.
            for (cx, rx) in attr_values(&svg, "ellipse", "cx")
                .into_iter()
                .zip(attr_values(&svg, "ellipse", "rx"))
            {
                assert!(cx - rx >= 0.0 && cx + rx <= w, "{cx} {rx} {w}");
            }
            for (cy, ry) in attr_values(&svg, "ellipse", "cy")
                .into_iter()
                .zip(attr_values(&svg, "ellipse", "ry"))
            {
                assert!(cy - ry >= 0.0 && cy + ry <= h, "{cy} {ry} {h}");
            }
        }
    }

    #[test]
    fn labels_tooltips_and_titles_are_escaped() {
        let nasty = "a<b & \"c\" 'd' >e\u{1}";
        let g = VisGraph {
            nodes: vec![VisNode {
                label: nasty.into(),
                tooltip: format!("key {nasty}"),
                fill: "#abc\" onload=\"x".into(),
                shape: NodeShape::Data,
            }],
            edges: vec![],
            direction: Direction::BottomToTop,
            title: Some(nasty.into()),
        };
        let svg = g.render_svg().unwrap();
        check_well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        let escaped = "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt;e";
        assert!(svg.contains(&format!(">{escaped}</text>")), "{svg}");
        assert!(
            svg.contains(&format!("<title>key {escaped}</title>")),
            "{svg}"
        );
        assert!(svg.contains(&format!("<title>{escaped}</title>")), "{svg}");
        assert!(!svg.contains("onload=\""));
        assert!(!svg.contains('\u{1}'));
        assert!(svg.contains("<rect x="));
    }

    #[test]
    fn empty_graph_is_a_valid_empty_svg() {
        let g = VisGraph::default();
        let svg = g.render_svg().unwrap();
        check_well_formed(&svg).unwrap();
        assert!(!svg.contains("<ellipse") && !svg.contains("marker-end="));
        assert_eq!(attr_values(&svg, "svg", "width"), vec![2.0 * MARGIN]);

        let titled = VisGraph {
            title: Some("nothing to do".into()),
            ..VisGraph::default()
        };
        let svg = titled.render_svg().unwrap();
        check_well_formed(&svg).unwrap();
        assert!(attr_values(&svg, "svg", "width")[0] > 13.0 * TITLE_FONT_SIZE * 0.5);
    }

    #[test]
    fn errors_instead_of_output_for_bad_graphs() {
        let mut g = sample();
        g.edges.push(VisEdge { from: 3, to: 99 });
        assert!(matches!(
            g.render_svg(),
            Err(VisError::EdgeOutOfRange { index: 99, .. })
        ));
        let mut g = sample();
        let root = g.nodes.len() - 1;
        g.edges.push(VisEdge { from: root, to: 0 });
        assert!(matches!(g.render_svg(), Err(VisError::Cycle { .. })));
    }

    #[test]
    fn edges_end_just_short_of_the_dependent() {
        // Bottom to top: the dependency is below, so the edge runs upwards
        // and stops an arrowhead's length below the dependent's outline.
        let a = NodeBox {
            x: 100.0,
            y: 200.0,
            width: 60.0,
            height: 36.0,
        };
        let b = NodeBox { y: 100.0, ..a };
        let [p1, c1, c2, p2] = edge_curve(
            &a,
            NodeShape::Task,
            &b,
            NodeShape::Data,
            Direction::BottomToTop,
        );
        assert_eq!(p1, (100.0, 182.0));
        assert_eq!(p2, (100.0, 118.0 + ARROW_LENGTH));
        assert!(p1.1 > c1.1 && c1.1 >= c2.1 && c2.1 > p2.1);
        assert_eq!((c1.0, c2.0), (p1.0, p2.0));

        // Left to right: x grows towards the dependent.
        let a = NodeBox {
            x: 50.0,
            y: 40.0,
            width: 60.0,
            height: 36.0,
        };
        let b = NodeBox { x: 200.0, ..a };
        let [p1, _, _, p2] = edge_curve(
            &a,
            NodeShape::Data,
            &b,
            NodeShape::Data,
            Direction::LeftToRight,
        );
        assert_eq!(p1, (80.0, 40.0));
        assert_eq!(p2, (170.0 - ARROW_LENGTH, 40.0));
    }

    #[test]
    fn text_colour_contrasts_with_fill() {
        assert_eq!(text_colour("#000000"), "#ffffff");
        assert_eq!(text_colour("#fff"), "#000000");
        assert_eq!(text_colour(&order_colour(0, 10)), "#ffffff");
        assert_eq!(text_colour(&order_colour(9, 10)), "#000000");
        assert_eq!(text_colour("steelblue"), "#000000");
        assert_eq!(text_colour("#12"), "#000000");
        assert_eq!(text_colour("#zzzzzz"), "#000000");
        assert_eq!(text_colour("#é12"), "#000000");
    }

    #[test]
    fn numbers_are_compact_and_finite() {
        assert_eq!(Num(1.25).to_string(), "1.2");
        assert_eq!(Num(-0.01).to_string(), "0.0");
        assert_eq!(Num(f64::NAN).to_string(), "0.0");
        assert_eq!(Num(12.0).to_string(), "12.0");
    }

    #[test]
    fn large_graph_renders() {
        // 10k nodes, ~20k edges: each node depends on up to two earlier ones.
        let n = 10_000;
        let nodes: Vec<VisNode> = (0..n)
            .map(|i| VisNode {
                label: format!("f{}", i % 97),
                tooltip: format!("('f', {i})"),
                fill: order_colour(i, n),
                shape: if i % 5 == 0 {
                    NodeShape::Data
                } else {
                    NodeShape::Task
                },
            })
            .collect();
        let mut edges = Vec::new();
        for i in 1..n {
            edges.push(VisEdge {
                from: ((i as u64).wrapping_mul(2_654_435_761) >> 7) as usize % i,
                to: i,
            });
            if i > 2 {
                edges.push(VisEdge {
                    from: i - 1 - (i % 3),
                    to: i,
                });
            }
        }
        let g = VisGraph {
            nodes,
            edges,
            direction: Direction::BottomToTop,
            title: None,
        };
        let svg = g.render_svg().unwrap();
        assert_eq!(svg.matches("<g class=\"node\"").count(), n);
        assert_eq!(svg.matches("marker-end=").count(), g.edges.len());
    }
}
