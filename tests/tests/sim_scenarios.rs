//! The shipped scenario files run and give the figures their comments promise; `weft-sim run
//! --json` ends with one JSON object; bad scenario files get errors that name the file and the
//! field.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;

use weft_tests::sim::{Scenario, Simulation, run_file};

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn reference_node_failure_reroutes_the_flows_through_washington() {
    let (_, report) = run_file(scenarios().join("reference-node-failure.toml"), None).unwrap();
    assert_eq!(report.flows.len(), 4);
    for f in &report.flows[..3] {
        let outage = f.outage_after(0).unwrap();
        assert!((100.0..200.0).contains(&outage), "{}: {outage} ms", f.name);
        assert!(f.outage_after(1).unwrap() < 20.0, "{}: restart", f.name);
        assert!(f.loss < 0.02, "{}: loss {}", f.name, f.loss);
    }
    let far = &report.flows[3];
    assert_eq!(far.lost, 0, "seattle-losangeles does not cross washington");
    assert!(report.nodes.iter().all(|n| n.up && n.routes == 11));
}

#[test]
fn three_hop_loss_shows_the_loss_and_the_cut() {
    let (_, report) = run_file(scenarios().join("three-hop-loss.toml"), Some(3)).unwrap();
    let f = &report.flows[0];
    // 2 s of the 9 s flow fall in the cut; the rest loses about 1 − 0.98³.
    let outage = f.outage_after(0).unwrap();
    assert!((2000.0..2200.0).contains(&outage), "outage {outage} ms");
    assert_eq!(
        f.outage_after(1),
        Some(outage),
        "the same gap ends after the restore"
    );
    let exposed = f.sent as f64 - outage;
    let loss = (f.lost as f64 - outage) / exposed;
    assert!((loss - 0.0588).abs() < 0.015, "loss outside the cut {loss}");
    assert!((f.latency_at(50.0).unwrap() - 30.0).abs() < 0.5);
}

#[test]
fn weft_sim_run_json_ends_with_the_report() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft-sim"))
        .args(["run", "--seed", "9", "--json"])
        .arg(scenarios().join("three-hop-loss.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("one-to-four (1 -> 4)"), "{stdout}");
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["seed"], 9);
    assert_eq!(v["flows"][0]["name"], "one-to-four");
    assert_eq!(v["flows"][0]["sent"], 9000);
    assert!(v["flows"][0]["outages"][0]["outage_ms"].as_f64().unwrap() > 2000.0);
    // The same seed through the library gives the same trace.
    let (_, report) = run_file(scenarios().join("three-hop-loss.toml"), Some(9)).unwrap();
    assert_eq!(v["trace_hash"], report.trace_hash.as_str());
}

fn error(text: &str) -> String {
    let s = match Scenario::from_toml_str(text, "bad.toml", &scenarios()) {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let config = match s.load_config() {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match Simulation::new(&config, &s, 1) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_scenarios_are_refused_with_the_file_and_field() {
    let head = "config = \"line4.toml\"\nduration_ms = 1000\n";
    let flow = "[[flow]]\nfrom = \"one\"\nto = \"four\"\nrate_pps = 10\nsize = 100\n";
    let cases = [
        (
            format!("{head}{flow}service = \"reliable\"\n"),
            "bad.toml: flow[0].service: \"reliable\" is not built in Weft yet",
        ),
        (
            format!("{head}{flow}sevrice = \"best-effort\"\n"),
            "bad.toml:8:1: unknown field `sevrice`",
        ),
        (
            format!("{head}[[flow]]\nfrom = \"one\"\nto = \"fiver\"\nrate_pps = 10\nsize = 100\n"),
            "bad.toml: flow[0].to: no node \"fiver\" in line4.toml (nodes: 1 (one), 2 (two)",
        ),
        (
            format!("{head}[[flow]]\nfrom = 1\nto = 1\nrate_pps = 10\nsize = 100\n"),
            "bad.toml: flow[0].to: the flow's source and destination are both node 1",
        ),
        (
            format!("{head}[[flow]]\nfrom = 1\nto = 2\nrate_pps = 10\nsize = 9000\n"),
            "bad.toml: flow[0].size: 9000 bytes is outside 16..=1200",
        ),
        (
            format!("{head}[[event]]\nat_ms = 5\nfail_node = 2\ncut_link = 0\n"),
            "bad.toml: event[0]: needs exactly one of",
        ),
        (
            format!("{head}[[event]]\nat_ms = 5000\nfail_node = 2\n"),
            "bad.toml: event[0].at_ms: after the scenario's duration_ms",
        ),
        (
            format!(
                "{head}[[event]]\nat_ms = 5\ncut_path = {{ link = [\"one\", \"three\"], path = 0 }}\n"
            ),
            "bad.toml: event[0].cut_path.link: no link between nodes 1 and 3",
        ),
        (
            format!("{head}[[event]]\nat_ms = 5\ncut_path = {{ link = 2, path = 2 }}\n"),
            "bad.toml: event[0].cut_path.path: link 2 has 2 path(s)",
        ),
        (
            format!(
                "{head}[[event]]\nat_ms = 5\nmisbehave = {{ node = 2, behaviour = \"lie\" }}\n"
            ),
            "bad.toml: event[0].misbehave.behaviour: unknown behaviour \"lie\"",
        ),
        (
            format!(
                "{head}[link_model]\nloss = {{ model = \"gilbert-elliott\", average = 0.1 }}\n"
            ),
            "bad.toml: link_model.loss.mean_burst: missing for model \"gilbert-elliott\"",
        ),
        (
            format!("{head}[[link_override]]\nlink = 7\nlatency_ms = 1\n"),
            "bad.toml: link_override[0].link: no link 7 in line4.toml",
        ),
        (
            format!("{head}[timers]\npath_dead_after_ms = 20\n"),
            "bad.toml: timers: ",
        ),
        (
            "config = \"nowhere.toml\"\nduration_ms = 1000\n".to_owned(),
            "bad.toml: config: \"nowhere.toml\" is neither relative to",
        ),
        (
            "config = \"line4.toml\"\nduration_ms = \"long\"\n".to_owned(),
            "bad.toml:2:15: invalid type: string \"long\"",
        ),
    ];
    for (text, want) in cases {
        let got = error(&text);
        assert!(got.contains(want), "want {want:?}\n got {got:?}");
    }
}

#[test]
fn the_cli_reports_errors_on_stderr_with_status_1() {
    let dir = std::env::temp_dir().join(format!("weft-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "config = \"x.toml\"\nduration_ms = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft-sim"))
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml: duration_ms: 0 is outside"),
        "{stderr}"
    );
}
