//! `font` and `fonts`: a spec's text set in an installed family or in a font file it supplies.
//! The supplied file is Noto Sans with its family renamed "Qoto Sans" (same glyphs, a family the
//! server does not have), so a frame set in it must equal the frame set in the installed Noto
//! Sans, and differ from the theme's own Inter.

use vidbuilder_domain::spec::{FontChoice, FontSource, ImageSource, Quality};

use super::*;

/// Noto Sans renamed: every "Noto Sans" in the file (its `name` table, ASCII and UTF-16BE)
/// becomes "Qoto Sans", which keeps every length and offset.
fn renamed_noto() -> Vec<u8> {
    let mut b = include_bytes!("../../../config/fonts/NotoSans-Regular.ttf").to_vec();
    let ascii = b"Noto Sans";
    let wide: Vec<u8> = ascii.iter().flat_map(|c| [0u8, *c]).collect();
    for pat in [ascii.to_vec(), wide] {
        let mut i = 0;
        while i + pat.len() <= b.len() {
            if b[i..i + pat.len()] == pat[..] {
                let at = if pat.len() == ascii.len() { i } else { i + 1 };
                b[at] = b'Q';
                i += pat.len();
            } else {
                i += 1;
            }
        }
    }
    b
}

fn still(font: Option<FontChoice>, assets: &Path) -> Result<Vec<u8>, RenderError> {
    let mut s = spec(
        "modern",
        Quality::Draft,
        vec![hero(
            "Typefaces matter",
            Some("set in the spec's font"),
            2.0,
        )],
        false,
        false,
    );
    s.font = font.map(Box::new);
    let mut settings = settings(assets);
    settings.images.assets_dir = Some(assets.to_path_buf());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let images = rt.block_on(crate::prefetch_media(&s, &settings))?;
    Ok(render_still(&catalog(), &s, &images, 1.5, false)?
        .data()
        .to_vec())
}

#[test]
fn text_is_set_in_an_installed_or_a_supplied_font() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("qoto.ttf"), renamed_noto()).unwrap();
    assert_eq!(
        crate::fonts::families(&renamed_noto()).unwrap(),
        ["Qoto Sans"]
    );
    let theirs = still(None, dir.path()).unwrap();
    let installed = still(
        Some(FontChoice {
            family: "Noto Sans".into(),
            sources: vec![],
        }),
        dir.path(),
    )
    .unwrap();
    let supplied = still(
        Some(FontChoice {
            family: "Qoto Sans".into(),
            sources: vec![FontSource {
                family: "Qoto Sans".into(),
                src: ImageSource::Asset("qoto.ttf".into()),
            }],
        }),
        dir.path(),
    )
    .unwrap();
    let differ = |a: &[u8], b: &[u8]| a.chunks(4).zip(b.chunks(4)).filter(|(p, q)| p != q).count();
    assert!(differ(&theirs, &installed) > 500, "Noto Sans is not Inter");
    assert_eq!(
        differ(&installed, &supplied),
        0,
        "the supplied file's glyphs are used"
    );

    // a file holding another family, and a file that is no font: refused, naming the field
    std::fs::write(dir.path().join("not-a-font.ttf"), b"hello").unwrap();
    for (file, says) in [
        ("qoto.ttf", "the font's family is 'Qoto Sans', not 'Brand'"),
        ("not-a-font.ttf", "not a TrueType or OpenType font"),
    ] {
        let e = still(
            Some(FontChoice {
                family: "Brand".into(),
                sources: vec![FontSource {
                    family: "Brand".into(),
                    src: ImageSource::Asset(file.into()),
                }],
            }),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("fonts[0].src: ") && e.contains(says), "{e}");
    }
}
