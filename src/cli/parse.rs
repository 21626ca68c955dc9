//! Checks of numeric options at parse time, so a bad value is refused with
//! the option's name and the valid range before anything runs. Domain
//! crates use them for their own options
//! (`#[arg(long, value_parser = pixel_transformer::cli::parse::non_negative)]`).

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

/// A whole number of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match number::<usize>(text)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A step count of at least 1.
pub fn steps(text: &str) -> Result<u64, String> {
    match number::<u64>(text)? {
        0 => Err("must be at least 1 (a run trains at least one step)".into()),
        n => Ok(n),
    }
}

/// A finite number above 0 (learning rates).
pub fn positive(text: &str) -> Result<f64, String> {
    let x = number::<f64>(text)?;
    if x > 0.0 && x.is_finite() {
        Ok(x)
    } else {
        Err(format!("must be a finite number above 0, got {x}"))
    }
}

/// A finite number above 0 (temperatures).
pub fn positive_f32(text: &str) -> Result<f32, String> {
    positive(text).map(|x| x as f32)
}

/// A finite number of at least 0 (noise levels).
pub fn non_negative(text: &str) -> Result<f32, String> {
    let x = number::<f32>(text)?;
    if x >= 0.0 && x.is_finite() {
        Ok(x)
    } else {
        Err(format!("must be a finite number ≥ 0, got {x}"))
    }
}

/// A probability in `[0, 1)` (dropout rates).
pub fn rate(text: &str) -> Result<f32, String> {
    let x = number::<f32>(text)?;
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("must be at least 0 and below 1, got {x}"))
    }
}

/// A share in `[0, 1]`.
pub fn share(text: &str) -> Result<f32, String> {
    let x = number::<f32>(text)?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("must be between 0 and 1, got {x}"))
    }
}
