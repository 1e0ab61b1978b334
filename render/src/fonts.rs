//! Fonts a spec supplies (`fonts: [{family, src}]`): read from the assets directory or fetched
//! under the image rules (size limit `images.max_bytes`), then checked to be a TrueType/OpenType
//! font holding the family it is given for. They are added to the render's own text system only.

use std::sync::Arc;

use vidbuilder_domain::spec::{FontSource, ImageSource, VideoSpec};

use crate::image::{open_url, read_asset, read_body, ImageError, ImageSettings, Images};
use crate::RenderError;

/// The families the font file `bytes` holds; an error if it is not a font.
pub fn families(bytes: &[u8]) -> Result<Vec<String>, String> {
    let mut db = fontdb::Database::new();
    db.load_font_data(bytes.to_vec());
    let names: Vec<String> = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
        .collect();
    if names.is_empty() {
        return Err("it is not a TrueType or OpenType font".into());
    }
    Ok(names)
}

/// Check that `bytes` hold `font.family`: the message names what they hold otherwise.
pub fn check(font: &FontSource, bytes: &[u8]) -> Result<(), String> {
    let names = families(bytes)?;
    if names.contains(&font.family) {
        Ok(())
    } else {
        Err(format!(
            "the font's family is '{}', not '{}'",
            names.join("', '"),
            font.family
        ))
    }
}

const FONT_TYPES: [&str; 9] = [
    "font/ttf",
    "font/otf",
    "font/sfnt",
    "application/font-sfnt",
    "application/x-font-ttf",
    "application/x-font-otf",
    "application/x-font-truetype",
    "application/vnd.ms-opentype",
    "application/octet-stream",
];

async fn fetch(
    client: &reqwest::Client,
    settings: &ImageSettings,
    url: &str,
) -> Result<Vec<u8>, ImageError> {
    let max = settings.max_bytes;
    let mut res = open_url(
        client,
        settings,
        url,
        "font/ttf, font/otf, */*;q=0.1",
        &|t| FONT_TYPES.contains(&t),
        "a font type (font/ttf, font/otf, …) or application/octet-stream",
        max,
    )
    .await?;
    read_body(&mut res, settings, max).await
}

/// Load every font `spec` supplies into `images`; the first that cannot be used fails the lot,
/// naming its field, e.g. `fonts[0].src: font brand.otf cannot be used: the font's family is …`.
pub async fn prefetch(
    spec: &VideoSpec,
    settings: &ImageSettings,
    images: &mut Images,
) -> Result<(), RenderError> {
    let Some(choice) = &spec.font else {
        return Ok(());
    };
    let mut client = None;
    for (i, font) in choice.sources.iter().enumerate() {
        let field = format!("fonts[{i}].src");
        let fail = |e: ImageError| e.into_render(&field, "font", &font.src);
        let bytes = match &font.src {
            ImageSource::Asset(rel) => {
                let (s, rel) = (settings.clone(), rel.clone());
                tokio::task::spawn_blocking(move || read_asset(&s, &rel))
                    .await
                    .map_err(|e| fail(ImageError::read(e.to_string())))?
                    .map_err(fail)?
            }
            ImageSource::Url(url) => {
                if client.is_none() {
                    client = Some(crate::image::client(settings)?);
                }
                let c = client.as_ref().expect("made above");
                fetch(c, settings, url).await.map_err(fail)?
            }
        };
        check(font, &bytes).map_err(|why| {
            RenderError::Image(format!(
                "{field}: font {} cannot be used: {why}",
                font.src.as_str()
            ))
        })?;
        images.insert_font(Arc::new(bytes));
    }
    Ok(())
}
