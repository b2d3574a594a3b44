//! What the checker does to the processes under test: workers armed to kill themselves at each
//! step of a send (and started again), and the timeline of API kills, Redis restarts, log
//! rotations and cuts.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::Proc;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::proxy::{Mode, Proxy};
use super::stack::Stack;
use super::{Plan, STEPS};

/// The faults that fired, in order: every one the plan holds must be there at the end.
pub(super) type Kills = Arc<std::sync::Mutex<Vec<String>>>;

/// Workers: the armed ones go through every step, `rounds` times, restarted after each kill.
/// Each task hands back its last worker once `stop_workers` is cancelled.
pub(super) fn start_workers(
    stack: &Arc<Stack>,
    plan: &Plan,
    kills: &Kills,
    stop_workers: &CancellationToken,
) -> Vec<JoinHandle<Proc>> {
    let mut worker_tasks = Vec::new();
    for n in 0..2 {
        let stack = stack.clone();
        let kills = kills.clone();
        let stop = stop_workers.clone();
        let armed = n < plan.armed_workers;
        let (rounds, kill_on) = (plan.rounds, plan.kill_on);
        worker_tasks.push(tokio::spawn(async move {
            let mut generation = 0;
            let faults: Vec<String> = if armed {
                (0..rounds)
                    .flat_map(|_| STEPS.iter().map(|s| format!("{s}:{kill_on}")))
                    .collect()
            } else {
                vec![]
            };
            for fault in faults {
                let mut w = stack.worker(n, generation, Some(fault.clone()));
                generation += 1;
                // Dies by its own hand at the armed step, or is stopped at the end of the load.
                let mut up_since = Instant::now();
                loop {
                    if let Some(status) = w.0.try_wait().unwrap() {
                        if status.signal() == Some(9) {
                            kills.lock().unwrap().push(format!("worker {n} at {fault}"));
                            break;
                        }
                        // A worker that cannot start (Postgres cut off: it migrates first) exits;
                        // a supervisor starts it again, as systemd or Kubernetes would.
                        assert!(
                            up_since.elapsed() < Duration::from_secs(30),
                            "worker {n} ({fault}) ended after running: {status}"
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        w = stack.worker(n, generation, Some(fault.clone()));
                        generation += 1;
                        up_since = Instant::now();
                        continue;
                    }
                    if stop.is_cancelled() {
                        return w;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            let w = stack.worker(n, generation, None);
            stop.cancelled().await;
            w
        }));
    }
    worker_tasks
}

/// Process faults on a timeline that starts at `started`; the task ends when the last cut has
/// been restored.
pub(super) fn start_faults(
    plan: &Plan,
    started: Instant,
    stack: &Arc<Stack>,
    (apis, redis): (&Arc<Mutex<[Proc; 2]>>, &Arc<Mutex<Proc>>),
    kills: &Kills,
    [pg_proxy, smtp_proxy, imap_proxy]: [&Arc<Proxy>; 3],
) -> JoinHandle<()> {
    let mut timeline: Vec<(u64, &str, u64)> = plan
        .api_kills
        .iter()
        .map(|&t| (t, "api", 1))
        .chain(plan.redis_kills.iter().map(|&t| (t, "redis", 2)))
        .chain(plan.postgres_cuts.iter().map(|&(t, d)| (t, "postgres", d)))
        .chain(plan.smtp_cuts.iter().map(|&(t, d)| (t, "smtp", d)))
        .chain(plan.smtp_421.iter().map(|&(t, d)| (t, "421", d)))
        .chain(plan.log_rotations.iter().map(|&t| (t, "logrotate", 0)))
        .chain(plan.imap_cuts.iter().map(|&(t, d)| (t, "imap", d)))
        .collect();
    timeline.sort();
    let stack = stack.clone();
    let (apis, redis, kills) = (apis.clone(), redis.clone(), kills.clone());
    let (pg_proxy, smtp_proxy, imap_proxy) =
        (pg_proxy.clone(), smtp_proxy.clone(), imap_proxy.clone());
    tokio::spawn(async move {
        let mut restores = tokio::task::JoinSet::new();
        for (at, what, secs) in timeline {
            tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
            let (proxy, mode) = match what {
                "postgres" => (Some(pg_proxy.clone()), Mode::Cut),
                "smtp" => (Some(smtp_proxy.clone()), Mode::Cut),
                "imap" => (Some(imap_proxy.clone()), Mode::Cut),
                "421" => (
                    Some(smtp_proxy.clone()),
                    Mode::Reply("421 4.3.2 checker: service not available\r\n"),
                ),
                _ => (None, Mode::Pass),
            };
            if let Some(proxy) = proxy {
                proxy.set(mode);
                kills
                    .lock()
                    .unwrap()
                    .push(format!("{what} cut at {at} s for {secs} s"));
                restores.spawn(async move {
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    proxy.set(Mode::Pass);
                });
                continue;
            }
            match what {
                "logrotate" => {
                    let status = Command::new("postfix")
                        .arg("logrotate")
                        .stdout(Stdio::null())
                        .status()
                        .expect("postfix logrotate");
                    assert!(status.success(), "postfix logrotate: {status}");
                    kills.lock().unwrap().push(format!("log rotated at {at} s"));
                }
                "api" => {
                    let n = (at as usize) % 2;
                    apis.lock().await[n].kill();
                    kills.lock().unwrap().push(format!("api {n} at {at} s"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    apis.lock().await[n] = stack.api(n);
                }
                _ => {
                    redis.lock().await.kill();
                    kills
                        .lock()
                        .unwrap()
                        .push(format!("redis at {at} s (restarted empty)"));
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    *redis.lock().await = stack.redis();
                }
            }
        }
        while restores.join_next().await.is_some() {}
    })
}
