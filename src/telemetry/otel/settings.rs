//! What a config says about OpenTelemetry, and how the standard environment completes it.
//!
//! Off by default: `set_endpoint` turns it on. The environment fills in what the program left
//! unset (`OTEL_EXPORTER_OTLP_ENDPOINT` when the endpoint is NULL, `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` when no ratio was set) and `OTEL_SDK_DISABLED=true` turns it off
//! whatever the program said. `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS` and the per-signal endpoints are read by the SDK and the OTLP
//! exporter themselves.

use crate::core::{Error, Result};
use opentelemetry_sdk::trace::Sampler;

/// The collector's default export period (the C API's documented default).
pub(crate) const DEFAULT_EXPORT_INTERVAL_MS: u32 = 10_000;
/// How long one export may take before it is abandoned (OTLP's default timeout).
pub(crate) const DEFAULT_EXPORT_TIMEOUT_MS: u32 = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct OtelSettings {
    pub enabled: bool,
    /// The collector's base URL (`http://host:4318`); `None`: the environment's, else
    /// `http://localhost:4318`.
    pub endpoint: Option<String>,
    /// `None`: `OTEL_TRACES_SAMPLER`, else parent-based always-on. `Some(0.0)`: no spans at all.
    pub traces_sample_ratio: Option<f64>,
    pub export_interval_ms: u32,
    pub export_timeout_ms: u32,
}

impl Default for OtelSettings {
    fn default() -> Self {
        OtelSettings {
            enabled: false,
            endpoint: None,
            traces_sample_ratio: None,
            export_interval_ms: DEFAULT_EXPORT_INTERVAL_MS,
            export_timeout_ms: DEFAULT_EXPORT_TIMEOUT_MS,
        }
    }
}

impl OtelSettings {
    /// Turns OpenTelemetry on, exporting to `endpoint` (its `/v1/traces` and `/v1/metrics`).
    pub fn set_endpoint(&mut self, endpoint: Option<&str>) -> Result<()> {
        if let Some(url) = endpoint {
            check_endpoint(url)?;
        }
        self.endpoint = endpoint.map(|url| url.trim_end_matches('/').to_owned());
        self.enabled = true;
        Ok(())
    }

    pub fn set_traces_sample_ratio(&mut self, ratio: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::invalid_argument(format!(
                "otel traces sample ratio must be within 0..1, not {ratio}"
            )));
        }
        self.traces_sample_ratio = Some(ratio);
        Ok(())
    }

    pub fn set_export_interval_ms(&mut self, ms: u32) -> Result<()> {
        if ms == 0 {
            return Err(Error::invalid_argument(
                "otel export interval must be at least 1 ms",
            ));
        }
        self.export_interval_ms = ms;
        Ok(())
    }

    pub fn set_export_timeout_ms(&mut self, ms: u32) -> Result<()> {
        if ms == 0 {
            return Err(Error::invalid_argument(
                "otel export timeout must be at least 1 ms",
            ));
        }
        self.export_timeout_ms = ms;
        Ok(())
    }

    /// Whether a client made now would export: on, and not disabled by `OTEL_SDK_DISABLED`.
    pub fn active(&self) -> bool {
        self.enabled && !env_flag("OTEL_SDK_DISABLED")
    }

    /// Whether spans are made at all (ratio 0 means metrics only, even under a sampled parent).
    pub fn traces_on(&self) -> bool {
        match self.traces_sample_ratio {
            Some(ratio) => ratio > 0.0,
            None => !matches!(env("OTEL_TRACES_SAMPLER").as_deref(), Some("always_off")),
        }
    }

    /// The sampler: the ratio given, parent-based; else the environment's; else the SDK's
    /// default, parent-based always-on.
    pub fn sampler(&self) -> Sampler {
        match self.traces_sample_ratio {
            Some(ratio) if ratio >= 1.0 => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Some(ratio) => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
            None => sampler_from_env(
                env("OTEL_TRACES_SAMPLER").as_deref(),
                env("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            ),
        }
    }

    /// Whether the sampler records every span without a parent (ratio 1, always-on, or the
    /// default), so that it need not be asked for those.
    pub fn roots_always_sampled(&self) -> bool {
        match self.traces_sample_ratio {
            Some(ratio) => ratio >= 1.0,
            None => matches!(
                env("OTEL_TRACES_SAMPLER").as_deref(),
                None | Some("always_on") | Some("parentbased_always_on")
            ),
        }
    }

    /// The URL of one signal (`/v1/traces`), or `None` to let the exporter read the environment.
    pub fn signal_url(&self, path: &str) -> Option<String> {
        self.endpoint.as_ref().map(|base| format!("{base}{path}"))
    }
}

/// Only plain HTTP collectors: the exporter's HTTP client is brisk's own small one.
fn check_endpoint(url: &str) -> Result<()> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        Error::invalid_argument(format!(
            "otel endpoint must be an http:// URL (https is not supported), not \"{url}\""
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::invalid_argument(format!(
            "otel endpoint \"{url}\" has no host"
        )));
    }
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

fn env_flag(name: &str) -> bool {
    env(name).as_deref() == Some("true")
}

/// `OTEL_TRACES_SAMPLER` as the specification lists it; an unknown or malformed value falls
/// back to the default (and a bad ratio to 1), as the SDKs do.
pub(crate) fn sampler_from_env(name: Option<&str>, arg: Option<&str>) -> Sampler {
    let ratio = || {
        arg.and_then(|a| a.parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0)
    };
    match name {
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()),
        Some("parentbased_always_off") => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        Some("parentbased_traceidratio") => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio())))
        }
        _ => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_be_plain_http_with_a_host() {
        let mut s = OtelSettings::default();
        assert!(s.set_endpoint(Some("https://collector:4318")).is_err());
        assert!(s.set_endpoint(Some("http://")).is_err());
        assert!(!s.enabled);
        s.set_endpoint(Some("http://127.0.0.1:4318/")).unwrap();
        assert!(s.enabled);
        assert_eq!(
            s.signal_url("/v1/traces").as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        s.set_endpoint(None).unwrap();
        assert_eq!(s.signal_url("/v1/traces"), None);
    }

    #[test]
    fn ratio_and_interval_are_checked() {
        let mut s = OtelSettings::default();
        assert!(s.set_traces_sample_ratio(1.5).is_err());
        assert!(s.set_traces_sample_ratio(-0.1).is_err());
        assert!(s.set_traces_sample_ratio(f64::NAN).is_err());
        s.set_traces_sample_ratio(0.0).unwrap();
        assert!(!s.traces_on());
        s.set_traces_sample_ratio(0.25).unwrap();
        assert!(s.traces_on());
        assert!(s.set_export_interval_ms(0).is_err());
        assert!(
            !s.enabled,
            "setting the ratio does not turn OpenTelemetry on"
        );
    }

    #[test]
    fn sampler_names_follow_the_specification() {
        let show = |n: Option<&str>, a: Option<&str>| format!("{:?}", sampler_from_env(n, a));
        assert_eq!(show(None, None), show(Some("parentbased_always_on"), None));
        assert!(show(Some("traceidratio"), Some("0.5")).contains("0.5"));
        assert!(show(Some("traceidratio"), Some("7")).contains("1.0"));
        assert!(show(Some("always_off"), None).contains("AlwaysOff"));
        assert!(show(Some("parentbased_traceidratio"), Some("0.1")).contains("ParentBased"));
    }
}
