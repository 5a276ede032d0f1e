//! The result of one run: common fields (scenario, parameters, durability,
//! date, git commit, machine load), the scenario's metrics, its per-second
//! time series and its status; printed as one JSON object per line (`--json`)
//! or as a readable table.
//!
//! Invariants: `status` is `ok` only when every verification count is zero
//! and no error occurred (`fail` otherwise); the process exit code follows it
//! ([`Status::exit_code`]).
//! Metric and parameter names are stable: `bench/results/*.jsonl` and the
//! README table are built from them. The time series is the JSON field
//! `series` (an array of `{t, rate, p99_ms, errors}`, one per second), with
//! `series_rate` naming what `rate` counts and `series_p99` which latency
//! `p99_ms` is.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::ledger::Verdict;
use super::proto::unix_secs;
use super::stats::{Hist, Series};

/// Outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Ran, measured, and every check passed.
    Ok,
    /// Ran, but a check failed (loss, duplicate, order, error, refused connection…).
    Fail,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
        }
    }

    /// 0 ok, 1 fail (3 is a setup error, see `loadgen::main`).
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            Self::Ok => ExitCode::SUCCESS,
            Self::Fail => ExitCode::from(1),
        }
    }
}

/// One run's report.
#[derive(Debug)]
pub(crate) struct Report {
    scenario: &'static str,
    params: Map<String, Value>,
    /// In insertion order (the table shows them so); a repeated name replaces.
    metrics: Vec<(String, Value)>,
    series: Option<Series>,
    problems: Vec<String>,
}

impl Report {
    pub(crate) fn new(scenario: &'static str) -> Self {
        Self { scenario, params: Map::new(), metrics: Vec::new(), series: None, problems: Vec::new() }
    }

    /// The scenario's name.
    pub(crate) fn scenario(&self) -> &'static str {
        self.scenario
    }

    /// Records the run's per-second time series (replaces an earlier one).
    pub(crate) fn series(&mut self, s: Series) -> &mut Self {
        self.series = Some(s);
        self
    }

    /// The run's time series, if the scenario recorded one.
    pub(crate) fn time_series(&self) -> Option<&Series> {
        self.series.as_ref()
    }

    /// `k=v` of every parameter, for titles.
    pub(crate) fn params_line(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
        params.join(" ")
    }

    /// Records a run parameter.
    pub(crate) fn param(&mut self, k: &str, v: impl Into<Value>) -> &mut Self {
        self.params.insert(k.to_owned(), v.into());
        self
    }

    /// Records a metric (a top-level JSON field).
    pub(crate) fn metric(&mut self, k: &str, v: impl Into<Value>) -> &mut Self {
        let v = v.into();
        match self.metrics.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => self.metrics.push((k.to_owned(), v)),
        }
        self
    }

    /// Records the `q` quantile of `h` as `name` (null without samples).
    pub(crate) fn quantile(&mut self, name: &str, h: &Hist, q: f64) -> &mut Self {
        self.metric(name, h.quantile_us(q).map_or(Value::Null, Value::from))
    }

    /// A check that failed; the run's status becomes `fail`.
    pub(crate) fn problem(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }

    /// Records the ledger's counts and turns every violation into a problem.
    pub(crate) fn verdict(&mut self, v: &Verdict) {
        let fields = [
            ("lost", v.lost),
            ("duplicates", v.duplicates),
            ("order_violations", v.order_violations),
            ("mismatched", v.mismatched),
            ("unexpected", v.unexpected),
            ("invalid_seq", v.invalid),
        ];
        self.metric("violations", v.violations());
        for (k, n) in fields {
            self.metric(k, n);
            if n > 0 {
                self.problem(format!("{k}: {n}"));
            }
        }
    }

    /// Records a load run's outcome: the ledger's counts, the errors by kind,
    /// and a problem for any error or for a run where nothing was acknowledged.
    pub(crate) fn outcome(&mut self, v: &Verdict, errors: &BTreeMap<String, u64>) {
        let total: u64 = errors.values().sum();
        self.metric("acked", v.acked)
            .metric("delivered", v.delivered)
            .metric("errors", total)
            .metric("error_kinds", json!(errors));
        self.verdict(v);
        if total > 0 {
            self.problem(format!("{total} errors: {errors:?}"));
        }
        if v.acked == 0 {
            self.problem("nothing was acknowledged");
        }
    }

    pub(crate) fn status(&self) -> Status {
        if self.problems.is_empty() { Status::Ok } else { Status::Fail }
    }

    /// `ok` or `fail`.
    pub(crate) fn status_name(&self) -> &'static str {
        self.status().name()
    }

    /// The JSON object, common fields first.
    pub(crate) fn to_json(&self, env: &RunEnv) -> Value {
        let mut o = Map::new();
        o.insert("scenario".into(), json!(self.scenario));
        o.insert("status".into(), json!(self.status().name()));
        o.insert("params".into(), Value::Object(self.params.clone()));
        o.insert("durability".into(), json!(env.durability));
        o.insert("broker".into(), json!(env.broker));
        o.insert("date".into(), json!(env.date));
        o.insert("git_commit".into(), env.git_commit.clone().map_or(Value::Null, Value::from));
        o.insert("cpus".into(), json!(env.cpus));
        o.insert("load_avg_1m".into(), env.load_1m.map_or(Value::Null, Value::from));
        for (k, v) in &self.metrics {
            o.insert(k.clone(), v.clone());
        }
        if let Some(s) = &self.series {
            o.insert("series_rate".into(), json!(s.rate_of));
            o.insert("series_p99".into(), json!(s.latency_of));
            o.insert("series".into(), json!(s.samples));
        }
        o.insert("problems".into(), json!(self.problems));
        Value::Object(o)
    }

    /// Prints the report on stdout (JSON line or table).
    pub(crate) fn print(&self, env: &RunEnv, as_json: bool) {
        if as_json {
            println!("{}", self.to_json(env));
            return;
        }
        println!(
            "loadgen {} [{}]: {}",
            self.scenario,
            self.params_line(),
            self.status().name().to_uppercase()
        );
        println!(
            "  {} broker, durability {}, {}, commit {}, {} cpus, load {}",
            env.broker,
            env.durability,
            env.date,
            env.git_commit.as_deref().unwrap_or("-"),
            env.cpus,
            env.load_1m.map_or("-".to_owned(), |l| format!("{l:.2}")),
        );
        for (k, v) in &self.metrics {
            println!("  {k:<20} {}", show(v));
        }
        if let Some(s) = &self.series {
            println!(
                "  {:<20} {} samples of {} and p99 {} (--json or --plot show them)",
                "series",
                s.samples.len(),
                s.rate_of,
                s.latency_of
            );
        }
        for p in &self.problems {
            println!("  PROBLEM: {p}");
        }
    }
}

/// A value as the table and titles show it.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Facts about where and when the run happened.
#[derive(Debug, Clone)]
pub(crate) struct RunEnv {
    pub(crate) durability: String,
    /// `spawned` or `external`.
    pub(crate) broker: &'static str,
    pub(crate) date: String,
    pub(crate) git_commit: Option<String>,
    pub(crate) cpus: usize,
    pub(crate) load_1m: Option<f64>,
}

impl RunEnv {
    pub(crate) fn capture(durability: String, spawned: bool) -> Self {
        Self {
            durability,
            broker: if spawned { "spawned" } else { "external" },
            date: iso8601(unix_secs()),
            git_commit: git_commit(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
        }
    }
}

/// `$MISSIVE_GIT_COMMIT`, else `git rev-parse --short HEAD` (None outside a checkout).
fn git_commit() -> Option<String> {
    if let Ok(c) = std::env::var("MISSIVE_GIT_COMMIT")
        && !c.is_empty()
    {
        return Some(c);
    }
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a unix time (UTC, proleptic Gregorian).
pub(crate) fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn violations_fail_the_run() {
        let mut r = Report::new("pairs");
        r.verdict(&Verdict::default());
        assert_eq!(r.status(), Status::Ok);
        r.verdict(&Verdict { duplicates: 1, ..Verdict::default() });
        assert_eq!(r.status(), Status::Fail);
        let env = RunEnv::capture("fsync".into(), true);
        let v = r.to_json(&env);
        assert_eq!(v["duplicates"], 1);
        assert_eq!(v["status"], "fail");
        assert_eq!(v["scenario"], "pairs");
        assert!(v.get("series").is_none(), "no series recorded, no field");
    }

    #[test]
    fn the_series_is_an_array_field() {
        use super::super::stats::Sample;
        let mut r = Report::new("fanout");
        let samples = vec![
            Sample { t: 1.0, rate: 10.0, p99_ms: Some(1.5), errors: 0 },
            Sample { t: 2.0, rate: 0.0, p99_ms: None, errors: 1 },
        ];
        r.series(Series { rate_of: "deliveries/s", latency_of: "deliver", samples });
        let v = r.to_json(&RunEnv::capture("fsync".into(), true));
        assert_eq!(v["series_rate"], "deliveries/s");
        assert_eq!(v["series"][0]["p99_ms"], 1.5);
        assert_eq!(v["series"][1]["p99_ms"], Value::Null);
        assert_eq!(v["series"].as_array().map(Vec::len), Some(2));
    }
}
