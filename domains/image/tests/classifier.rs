//! The evaluation's classifier: it learns MNIST digits far beyond chance from
//! a few hundred examples, survives a save/load round trip, and refuses bad files.

use std::time::Instant;

use pixel_transformer::{Error, Split};
use pixel_transformer_image::classifier::{Classifier, ClassifierOptions};
use pixel_transformer_image::{DatasetKind, Image, ImageConfig, ImageDomain};

fn digits(split: Split, n: usize) -> (Vec<Image<1>>, Vec<u8>) {
    let domain = ImageDomain::<1>::new(ImageConfig {
        dataset: DatasetKind::Mnist,
        data: None,
        size: Some(28),
        grey: false,
        channels: Some(1),
        augment: false,
    })
    .unwrap();
    let images = (0..n).map(|i| domain.image(split, i).unwrap()).collect();
    let labels = domain.labels(split).unwrap()[..n].to_vec();
    (images, labels)
}

#[test]
fn it_learns_digits_far_beyond_chance_and_the_untrained_net() {
    let start = Instant::now();
    let (train, train_labels) = digits(Split::Train, 500);
    let (test, test_labels) = digits(Split::Test, 500);
    let options = ClassifierOptions {
        epochs: 10,
        ..ClassifierOptions::default()
    };
    let untrained = Classifier::train(
        &train,
        &train_labels,
        &ClassifierOptions {
            epochs: 0,
            ..options.clone()
        },
        serde_json::Value::Null,
    )
    .unwrap();
    let trained =
        Classifier::train(&train, &train_labels, &options, serde_json::Value::Null).unwrap();
    let before = untrained.accuracy(&test, &test_labels).unwrap();
    let after = trained.accuracy(&test, &test_labels).unwrap();
    // The best constant guess: the most frequent test label.
    let majority = (0..10u8)
        .map(|c| test_labels.iter().filter(|&&l| l == c).count())
        .max()
        .unwrap() as f64
        / test_labels.len() as f64;
    eprintln!(
        "held-out accuracy: trained {after:.3}, untrained {before:.3}, majority class {majority:.3}; {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(after > 0.75, "{after}");
    assert!(after > majority + 0.5 && after > before + 0.5);
    assert!(trained.info().train_accuracy > after - 0.05);
}

#[test]
fn a_saved_classifier_loads_with_the_same_predictions_and_bad_files_name_themselves() {
    let (train, labels) = digits(Split::Train, 100);
    let options = ClassifierOptions {
        hidden: 16,
        epochs: 1,
        ..ClassifierOptions::default()
    };
    let data = serde_json::json!({"dataset": "mnist"});
    let net = Classifier::train(&train, &labels, &options, data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("classifier.safetensors");
    net.save(&path).unwrap();
    let loaded = Classifier::load(&path).unwrap();
    assert_eq!(loaded.info(), net.info());
    assert_eq!(
        loaded.predict(&train).unwrap(),
        net.predict(&train).unwrap()
    );
    // Wrong image size or channels: a clear error, no panic.
    let small = Image::<1>::filled(8, 8, [0.0]).unwrap();
    assert!(loaded.predict(&[small]).is_err());
    assert!(loaded
        .predict(&[Image::<3>::filled(28, 28, [0.0; 3]).unwrap()])
        .is_err());

    // Truncated, garbage and missing files name the file.
    let bytes = std::fs::read(&path).unwrap();
    for (name, content) in [
        ("truncated.safetensors", &bytes[..bytes.len() / 2]),
        ("garbage.safetensors", &b"not a classifier at all"[..]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        let err = Classifier::load(&p).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let missing = dir.path().join("missing.safetensors");
    let err = Classifier::load(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("missing"));
    // A safetensors file without the classifier header (renamed key) is refused.
    let key = b"pixel_transformer_image_classifier";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let mut renamed = bytes.clone();
    renamed[at + key.len() - 1] = b'X';
    let other = dir.path().join("other.safetensors");
    std::fs::write(&other, renamed).unwrap();
    let err = Classifier::load(&other).unwrap_err();
    assert!(err.to_string().contains("no classifier header"), "{err}");
}
