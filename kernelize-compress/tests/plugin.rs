//! Codecs as plugins: the manager's dynamic calls, the typed Rust API with statistics, and
//! tokio streams.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kernelize_compress::{
    CodecPlugin, CompressOptions, CompressionPlugin, DecompressOptions, Direction, codecs,
};
use kernelize_core::payload::MEDIA_OCTET_STREAM;
use kernelize_core::{Call, ErrorKind, Payload, PluginConfig, PluginManager};
use serde_json::json;

fn sample() -> Vec<u8> {
    b"{\"order\": 1, \"status\": \"shipped\", \"currency\": \"EUR\"}\n".repeat(2_000)
}

#[tokio::test]
async fn every_codec_is_a_plugin_with_compress_and_decompress_actions() {
    let manager = PluginManager::new();
    manager
        .install_all(kernelize_compress::factories())
        .unwrap();
    for codec in codecs() {
        manager.activate(codec.name()).await.unwrap();
        let packed = manager
            .call(
                codec.name(),
                Call::new("compress", Payload::bytes(sample(), MEDIA_OCTET_STREAM)),
            )
            .await
            .unwrap()
            .into_blob()
            .unwrap();
        assert_eq!(packed.media_type, codec.media_type());
        let unpacked = manager
            .call(
                codec.name(),
                Call::new("decompress", Payload::Bytes(packed)),
            )
            .await
            .unwrap()
            .into_blob()
            .unwrap();
        assert_eq!(
            unpacked.data.as_ref(),
            sample().as_slice(),
            "{}",
            codec.name()
        );
    }
    manager.deactivate_all().await;
}

/// The first codec with more than one level, and a manager with every codec installed.
fn codec_with_levels_and_manager() -> (&'static dyn kernelize_compress::Codec, PluginManager) {
    let codec = codecs()
        .into_iter()
        .find(|c| c.levels().max > c.levels().min)
        .expect("a codec with levels is enabled");
    let manager = PluginManager::new();
    manager
        .install_all(kernelize_compress::factories())
        .unwrap();
    (codec, manager)
}

#[tokio::test]
async fn plugin_settings_are_defaults_that_a_call_overrides() {
    let (codec, manager) = codec_with_levels_and_manager();
    let (low, high) = (codec.levels().min, codec.levels().max.min(19));
    manager.configure(
        codec.name(),
        PluginConfig::with_settings(json!({ "level": high })),
    );
    manager.activate(codec.name()).await.unwrap();
    let size_with = |config: serde_json::Value| {
        let manager = manager.clone();
        async move {
            manager
                .call(
                    codec.name(),
                    Call::new("compress", Payload::bytes(sample(), MEDIA_OCTET_STREAM))
                        .with_config(config),
                )
                .await
                .unwrap()
                .into_blob()
                .unwrap()
                .data
                .len()
        }
    };
    let default_high = size_with(serde_json::Value::Null).await;
    let override_low = size_with(json!({ "level": low })).await;
    assert!(
        default_high <= override_low,
        "{default_high} > {override_low}"
    );
}

#[tokio::test]
async fn an_out_of_range_level_is_refused_naming_the_range() {
    let (codec, manager) = codec_with_levels_and_manager();
    manager.activate(codec.name()).await.unwrap();
    let err = manager
        .call(
            codec.name(),
            Call::new("compress", Payload::bytes(sample(), MEDIA_OCTET_STREAM))
                .with_config(json!({"level": 99})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let range = format!("levels {} to {}", codec.levels().min, codec.levels().max);
    assert!(err.to_string().contains(&range), "{err}");

    manager.configure(
        codec.name(),
        PluginConfig::with_settings(json!({"level": 99})),
    );
    manager.deactivate(codec.name(), false).await.unwrap();
    assert!(manager.activate(codec.name()).await.is_err());
}

#[test]
fn stats_describe_the_last_operation() {
    for codec in codecs() {
        let plugin = CodecPlugin::new(codec);
        assert!(plugin.stats().is_none());
        let data = sample();
        let packed = plugin.compress(&data, &CompressOptions::default()).unwrap();
        let stats = plugin.stats().unwrap();
        assert_eq!(stats.direction, Direction::Compress);
        assert_eq!(stats.input_bytes, data.len() as u64);
        assert_eq!(stats.output_bytes, packed.len() as u64);
        assert!((stats.ratio - data.len() as f64 / packed.len() as f64).abs() < 1e-9);
        assert!(stats.throughput_mb_s > 0.0, "{}", codec.name());
        assert_eq!(stats.level, Some(codec.levels().default));

        plugin
            .decompress(&packed, &DecompressOptions::default())
            .unwrap();
        let stats = plugin.stats().unwrap();
        assert_eq!(stats.direction, Direction::Decompress);
        assert_eq!(
            (stats.input_bytes, stats.output_bytes),
            (packed.len() as u64, data.len() as u64)
        );
    }
}

#[tokio::test]
async fn tokio_streams_round_trip_through_every_codec() {
    for codec in codecs() {
        let plugin = CodecPlugin::new(codec);
        let data = sample();
        let (packed_w, mut packed_r) = tokio::io::duplex(64 * 1024);
        let input = std::io::Cursor::new(data.clone());
        let writer = tokio::spawn({
            let plugin = CodecPlugin::new(codec);
            async move {
                plugin
                    .compress_async(
                        Box::new(input),
                        Box::new(packed_w),
                        CompressOptions::default(),
                    )
                    .await
            }
        });
        let mut packed = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut packed_r, &mut packed)
            .await
            .unwrap();
        let stats = writer.await.unwrap().unwrap();
        assert_eq!(stats.output_bytes, packed.len() as u64);

        let (out_w, mut out_r) = tokio::io::duplex(64 * 1024);
        let reader = tokio::spawn(async move {
            plugin
                .decompress_async(
                    Box::new(std::io::Cursor::new(packed)),
                    Box::new(out_w),
                    DecompressOptions::default(),
                )
                .await
        });
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut out_r, &mut out)
            .await
            .unwrap();
        reader.await.unwrap().unwrap();
        assert_eq!(out, data, "{}", codec.name());
    }
}

/// A 96×64 gradient as PNG.
#[cfg(feature = "png")]
fn gradient_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[cfg(feature = "png")]
#[tokio::test]
async fn every_image_format_is_a_plugin_that_encodes_and_decodes_to_png() {
    use kernelize_compress::image::{ImageFormat, ImagePlugin};
    let manager = PluginManager::new();
    manager
        .install_all(kernelize_compress::factories())
        .unwrap();
    let formats: Vec<ImageFormat> = ImageFormat::ALL
        .into_iter()
        .filter(|f| f.is_available())
        .collect();
    assert!(formats.contains(&ImageFormat::Png));
    for format in formats {
        let id = ImagePlugin::id(format);
        manager.configure(&id, PluginConfig::with_settings(json!({"speed": 10})));
        manager.activate(&id).await.unwrap();
        let encoded = manager
            .call(
                &id,
                Call::new("compress", Payload::bytes(gradient_png(), "image/png"))
                    .with_config(json!({"quality": 70})),
            )
            .await
            .unwrap()
            .into_blob()
            .unwrap();
        assert_eq!(encoded.media_type, format.media_type(), "{id}");
        let png = manager
            .call(&id, Call::new("decompress", Payload::Bytes(encoded)))
            .await
            .unwrap()
            .into_blob()
            .unwrap();
        assert_eq!(png.media_type, "image/png");
        let back = image::load_from_memory(&png.data).unwrap();
        assert_eq!((back.width(), back.height()), (96, 64), "{id}");
        // Over a pixel limit, refused.
        let err = manager
            .call(
                &id,
                Call::new("decompress", Payload::Bytes(png.clone()))
                    .with_config(json!({"max_pixels": 100})),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{id}: {err}");
    }
    // A bad quality in the settings stops activation.
    manager.configure(
        "image-jpeg",
        PluginConfig::with_settings(json!({"quality": 0})),
    );
    manager.deactivate("image-jpeg", false).await.unwrap();
    let err = manager.activate("image-jpeg").await.unwrap_err();
    assert!(err.to_string().contains("quality"), "{err}");
    manager.deactivate_all().await;
}
