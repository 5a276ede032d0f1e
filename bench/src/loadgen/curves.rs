//! `loadgen curves`: scalability curves. Runs `pairs`, `fanout` (and
//! `nats-fanout` beside it), `sync` and `idle` at growing sizes, each as its
//! own `loadgen SCENARIO ... --spawn --durability fsync --json` child process
//! (a fresh broker per point), then writes every result to `curves.json` and
//! draws one SVG per curve (`curve-{pairs,fanout,sync,idle}.svg`): x = size
//! on a log scale, y = the scenario's main figure, and on a second axis the
//! server's CPU per unit of work where the report has it.
//!
//! Sizes (`--quick` or CURVES=quick: small sizes and 2-second runs, to check
//! the driver):
//! - pairs: 1, 10, 100, 1000, 5000 pairs (5000 pairs = 10 000 connections),
//!   `--secs` of sending; y = `acked_per_s`, CPU = `broker_cpu_us_per_msg`;
//! - fanout: 100, 1000, 5000, 10 000 members (the broker's default group
//!   limit is 10 000); y = `deliveries_per_s`, CPU = `broker_cpu_us_per_delivery`;
//!   `nats-fanout` at the same sizes on the same plot;
//! - sync: 50, 500, 5000 conversations, 50 000 messages in all; y = `sync_ms`,
//!   CPU = `broker_cpu_us_per_msg` (of the catch-up);
//! - idle: 1000, 5000, 18 000 connections (children of 5000 connections each,
//!   under the 20 000 open-file limit of a process); y = `bytes_per_conn`.
//!
//! Invariants: every point runs the scenario's own checks (lost, duplicates,
//! order, errors) and a point that fails, or cannot run at its size, is
//! recorded with its exit code and reason, printed, and makes the whole
//! command exit 1; nothing is skipped silently. Only `ok` points are drawn;
//! the plot's title names the failed sizes. The outputs are written whole
//! (temporary file, then rename) even when points failed. `--replot` redraws
//! the SVGs from an existing curves.json without running anything.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

use super::cli::{CurvesArgs, TargetArgs};
use super::plot::{self, Curve, Line};
use super::report::RunEnv;

/// Lines of a failed child's stderr kept for its reason.
const STDERR_TAIL: usize = 6;

/// One curve: a scenario, its size flag and sizes, and the figures to plot.
#[derive(Debug, Clone)]
struct Def {
    name: &'static str,
    scenario: &'static str,
    /// The flag that sets the size, and the x axis's name.
    size_flag: &'static str,
    x_label: &'static str,
    sizes: Vec<u32>,
    /// Flags every point gets.
    extra: Vec<String>,
    /// Report field of the main figure, and its axis label.
    y: &'static str,
    y_label: &'static str,
    /// Report field of the CPU per unit of work, and its axis label.
    cpu: Option<(&'static str, &'static str)>,
    /// Also run this scenario at the same sizes (drawn beside it).
    compare: Option<&'static str>,
}

fn defs(a: &CurvesArgs, quick: bool) -> Vec<Def> {
    let secs = if quick { a.secs.min(2.0) } else { a.secs }.to_string();
    let sizes = |full: &[u32], small: &[u32]| if quick { small.to_vec() } else { full.to_vec() };
    let all = vec![
        Def {
            name: "pairs",
            scenario: "pairs",
            size_flag: "--pairs",
            x_label: "pairs (2 connections each)",
            sizes: sizes(&[1, 10, 100, 1000, 5000], &[1, 10, 100]),
            extra: vec!["--secs".into(), secs.clone()],
            y: "acked_per_s",
            y_label: "acked messages/s",
            cpu: Some(("broker_cpu_us_per_msg", "broker CPU µs per message")),
            compare: None,
        },
        Def {
            name: "fanout",
            scenario: "fanout",
            size_flag: "--members",
            x_label: "group members (online)",
            sizes: sizes(&[100, 1000, 5000, 10_000], &[100, 500]),
            extra: vec!["--secs".into(), secs],
            y: "deliveries_per_s",
            y_label: "deliveries/s",
            cpu: Some(("broker_cpu_us_per_delivery", "server CPU µs per delivery")),
            compare: (!a.no_nats).then_some("nats-fanout"),
        },
        Def {
            name: "sync",
            scenario: "sync",
            size_flag: "--convs",
            x_label: "conversations",
            sizes: sizes(&[50, 500, 5000], &[50, 200]),
            extra: vec!["--msgs".into(), if quick { "5000" } else { "50000" }.into()],
            y: "sync_ms",
            y_label: "catch-up time, ms",
            cpu: Some(("broker_cpu_us_per_msg", "broker CPU µs per message synced")),
            compare: None,
        },
        Def {
            name: "idle",
            scenario: "idle",
            size_flag: "--conns",
            x_label: "idle connections",
            sizes: sizes(&[1000, 5000, 18_000], &[200, 1000]),
            extra: Vec::new(),
            y: "bytes_per_conn",
            y_label: "broker bytes per connection",
            cpu: None,
            compare: None,
        },
    ];
    all.into_iter().filter(|d| a.only.is_empty() || a.only.iter().any(|o| o == d.name)).collect()
}

/// The outcome of one point.
#[derive(Debug, Clone)]
struct Point {
    size: u32,
    exit_code: Option<i32>,
    /// The child's JSON report, if it printed one.
    report: Option<Value>,
    /// Why it failed (empty when ok).
    reason: String,
}

impl Point {
    fn ok(&self) -> bool {
        self.exit_code == Some(0) && self.report.as_ref().is_some_and(|r| r["status"] == "ok")
    }

    fn field(&self, key: &str) -> Option<f64> {
        self.report.as_ref()?.get(key)?.as_f64()
    }

    /// A point as [`Point::to_json`] wrote it.
    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            size: u32::try_from(v["size"].as_u64()?).ok()?,
            exit_code: v["exit_code"].as_i64().and_then(|c| i32::try_from(c).ok()),
            report: v.get("report").filter(|r| !r.is_null()).cloned(),
            reason: v["reason"].as_str().unwrap_or_default().to_owned(),
        })
    }

    fn to_json(&self, d: &Def) -> Value {
        json!({
            "size": self.size,
            "status": if self.ok() { "ok" } else { "fail" },
            "exit_code": self.exit_code,
            "y": self.field(d.y),
            "cpu": d.cpu.and_then(|(k, _)| self.field(k)),
            "reason": self.reason,
            "report": self.report,
        })
    }
}

/// Runs the curves, writes the outputs; exit 0 when every point passed.
pub(crate) fn run(t: &TargetArgs, a: &CurvesArgs) -> anyhow::Result<ExitCode> {
    if t.addr.is_some() || t.transport != "tcp" || t.plot.is_some() {
        anyhow::bail!("curves spawns a broker per point over TCP: no --addr, --transport or --plot");
    }
    let quick = a.quick || std::env::var("CURVES").is_ok_and(|v| v == "quick");
    if a.replot {
        return replot(a, quick);
    }
    let exe = std::env::current_exe().context("locating the loadgen executable")?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let started = Instant::now();
    let env = RunEnv::capture("fsync".to_owned(), true);
    let mut curves = Vec::new();
    let mut failed = Vec::new();
    for d in defs(a, quick) {
        let mut runs: Vec<(&'static str, Vec<Point>)> = Vec::new();
        for scenario in std::iter::once(d.scenario).chain(d.compare) {
            let mut points = Vec::new();
            for &size in &d.sizes {
                let p = run_point(&exe, t, &d, scenario, size);
                if !p.ok() {
                    eprintln!("loadgen curves: {scenario} {} {size} FAILED: {}", d.size_flag, p.reason);
                    failed.push(format!("{scenario} {} {size}: {}", d.size_flag, p.reason));
                }
                points.push(p);
            }
            runs.push((scenario, points));
        }
        draw(&a.out, &d, &runs)?;
        print_summary(&d, &runs);
        curves.push(curve_json(&d, &runs));
    }
    let doc = json!({
        "date": env.date,
        "git_commit": env.git_commit,
        "cpus": env.cpus,
        "durability": "fsync",
        "quick": quick,
        "wall_secs": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "failed": failed,
        "curves": curves,
    });
    let path = a.out.join("curves.json");
    write_whole(&path, &format!("{doc:#}\n"))?;
    println!("wrote {} in {:.0} s", path.display(), started.elapsed().as_secs_f64());
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("loadgen curves: {} point(s) failed:", failed.len());
        for f in &failed {
            eprintln!("  {f}");
        }
        Ok(ExitCode::from(1))
    }
}

fn draw(out: &Path, d: &Def, runs: &[(&'static str, Vec<Point>)]) -> anyhow::Result<()> {
    let svg = out.join(format!("curve-{}.svg", d.name));
    plot::curve_svg(&svg, &curve_plot(d, runs))?;
    eprintln!("loadgen curves: wrote {}", svg.display());
    Ok(())
}

/// `--replot`: the SVGs again from `curves.json` (the curves it holds).
fn replot(a: &CurvesArgs, quick: bool) -> anyhow::Result<ExitCode> {
    let path = a.out.join("curves.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let stored =
        doc["curves"].as_array().with_context(|| format!("{}: no `curves` array", path.display()))?;
    for d in defs(a, quick) {
        let Some(c) = stored.iter().find(|c| c["curve"] == d.name) else { continue };
        let runs: Vec<(&'static str, Vec<Point>)> = std::iter::once(d.scenario)
            .chain(d.compare)
            .filter_map(|scenario| {
                let run = c["runs"].as_array()?.iter().find(|r| r["scenario"] == scenario)?;
                let points = run["points"].as_array()?.iter().filter_map(Point::from_json).collect();
                Some((scenario, points))
            })
            .collect();
        draw(&a.out, &d, &runs)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one point as a child process; its stderr is passed through (the
/// progress lines) and its last lines kept for the reason of a failure.
fn run_point(exe: &Path, t: &TargetArgs, d: &Def, scenario: &str, size: u32) -> Point {
    let mut cmd = Command::new(exe);
    cmd.args([scenario, d.size_flag, &size.to_string()]).args(&d.extra).args([
        "--spawn",
        "--durability",
        "fsync",
        "--json",
    ]);
    if let Some(b) = &t.broker_bin {
        cmd.arg("--broker-bin").arg(b);
    }
    if let Some(w) = t.workers {
        cmd.args(["--workers", &w.to_string()]);
    }
    eprintln!(
        "== loadgen {scenario} {} {size} {} --spawn --durability fsync --json",
        d.size_flag,
        d.extra.join(" ")
    );
    let mut point = Point { size, exit_code: None, report: None, reason: String::new() };
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            point.reason = format!("could not start {}: {e}", exe.display());
            return point;
        }
    };
    let tail = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            tail.into_iter().collect::<Vec<_>>()
        })
    });
    let mut stdout = String::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            stdout.push_str(&line);
            stdout.push('\n');
        }
    }
    let status = child.wait();
    let tail = tail.and_then(|h| h.join().ok()).unwrap_or_default();
    point.exit_code = status.ok().and_then(|s| s.code());
    point.report = stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok());
    if !point.ok() {
        let problems = point
            .report
            .as_ref()
            .and_then(|r| r["problems"].as_array())
            .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
            .unwrap_or_default();
        let why = if problems.is_empty() { tail.join(" | ") } else { problems };
        point.reason =
            format!("exit {}: {why}", point.exit_code.map_or("by signal".to_owned(), |c| c.to_string()));
    }
    point
}

fn curve_json(d: &Def, runs: &[(&'static str, Vec<Point>)]) -> Value {
    let runs: Vec<Value> = runs
        .iter()
        .map(|(scenario, points)| {
            json!({
                "scenario": scenario,
                "points": points.iter().map(|p| p.to_json(d)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "curve": d.name,
        "x": d.size_flag.trim_start_matches('-'),
        "x_label": d.x_label,
        "y": d.y,
        "y_label": d.y_label,
        "cpu": d.cpu.map(|c| c.0),
        "cpu_label": d.cpu.map(|c| c.1),
        "runs": runs,
    })
}

fn curve_plot(d: &Def, runs: &[(&'static str, Vec<Point>)]) -> Curve {
    let line = |scenario: &str, points: &[Point], key: &str, what: &str| Line {
        label: format!("{} {what}", if scenario.starts_with("nats") { "NATS core" } else { "Missive" }),
        points: points
            .iter()
            .filter(|p| p.ok())
            .filter_map(|p| Some((f64::from(p.size), p.field(key)?)))
            .collect(),
    };
    let failed: Vec<String> = runs
        .iter()
        .flat_map(|(s, ps)| ps.iter().filter(|p| !p.ok()).map(move |p| format!("{s} {}", p.size)))
        .collect();
    let mut title = format!("loadgen {} curve (fsync, spawned broker per point)", d.name);
    if !failed.is_empty() {
        title.push_str(&format!(" — FAILED: {}", failed.join(", ")));
    }
    Curve {
        title,
        x_label: format!("{} (log scale)", d.x_label),
        y_label: d.y_label.to_owned(),
        lines: runs.iter().map(|(s, ps)| line(s, ps, d.y, d.y_label)).collect(),
        cpu_label: d.cpu.map_or(String::new(), |c| c.1.to_owned()),
        cpu_lines: d
            .cpu
            .map(|(k, label)| runs.iter().map(|(s, ps)| line(s, ps, k, label)).collect())
            .unwrap_or_default(),
    }
}

fn print_summary(d: &Def, runs: &[(&'static str, Vec<Point>)]) {
    for (scenario, points) in runs {
        println!("{scenario} curve ({} by {}):", d.y, d.size_flag.trim_start_matches('-'));
        for p in points {
            let cpu = d.cpu.and_then(|(k, _)| Some(format!("  {k} {}", p.field(k)?))).unwrap_or_default();
            match p.field(d.y) {
                Some(y) if p.ok() => println!("  {:>6}  {y}{cpu}", p.size),
                _ => println!("  {:>6}  FAILED ({})", p.size, p.reason),
            }
        }
    }
}

/// Writes `text` to `path` through a temporary file renamed over it.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(quick: bool, only: &[&str]) -> CurvesArgs {
        CurvesArgs {
            out: "x".into(),
            quick,
            only: only.iter().map(|s| (*s).to_owned()).collect(),
            secs: 5.0,
            no_nats: false,
            replot: false,
        }
    }

    #[test]
    fn full_sizes_are_the_issue_s() {
        let d = defs(&args(false, &[]), false);
        let sizes: Vec<(&str, Vec<u32>)> = d.iter().map(|d| (d.name, d.sizes.clone())).collect();
        assert_eq!(
            sizes,
            [
                ("pairs", vec![1, 10, 100, 1000, 5000]),
                ("fanout", vec![100, 1000, 5000, 10_000]),
                ("sync", vec![50, 500, 5000]),
                ("idle", vec![1000, 5000, 18_000]),
            ]
        );
        assert_eq!(d[1].compare, Some("nats-fanout"));
        let quick = defs(&args(true, &["fanout"]), true);
        assert_eq!(quick.len(), 1);
        assert_eq!(quick[0].extra, ["--secs", "2"]);
    }

    #[test]
    fn failed_points_are_kept_out_of_the_plot_and_named() {
        let d = defs(&args(false, &["pairs"]), false).remove(0);
        let ok = Point {
            size: 10,
            exit_code: Some(0),
            report: Some(json!({"status": "ok", "acked_per_s": 5.0, "broker_cpu_us_per_msg": 2.0})),
            reason: String::new(),
        };
        let bad = Point { size: 5000, exit_code: Some(3), report: None, reason: "exit 3: no".into() };
        let runs = vec![("pairs", vec![ok, bad])];
        let c = curve_plot(&d, &runs);
        assert_eq!(c.lines[0].points, [(10.0, 5.0)]);
        assert_eq!(c.cpu_lines[0].points, [(10.0, 2.0)]);
        assert!(c.title.contains("FAILED: pairs 5000"), "{}", c.title);
        let j = curve_json(&d, &runs);
        assert_eq!(j["runs"][0]["points"][1]["status"], "fail");
        assert_eq!(j["runs"][0]["points"][0]["y"], 5.0);
        // --replot reads the points back as they were.
        let back: Vec<Point> = j["runs"][0]["points"]
            .as_array()
            .map(|ps| ps.iter().filter_map(Point::from_json).collect())
            .unwrap_or_default();
        assert_eq!(curve_plot(&d, &[("pairs", back)]), c);
    }
}
