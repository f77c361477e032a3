//! The deploy side of an app: start / stop / restart, rollback, config vars, settings and
//! cancelling a build (form posts); a build's log page; and what `console.js` reads to keep the
//! page live: a build's log and the app's output as server-sent events, and a small status
//! document.
//!
//! Every action calls the same deployer method as the JSON API (`api::deploys`). Those that
//! launch a container run through [`Operations`], so the browser gets its answer within
//! [`super::ops::WAIT`] whatever the deploy engine is doing.

use super::apps::app_path;
use super::error::{PageResult, sentence};
use super::notice::Flash;
use super::ops::Operations;
use super::pages::{BuildPage, Layout};
use super::render::render;
use super::request::{Ctx, SignedForm, redirect_with};
use super::views::{AppRows, BuildRow, release_label, status_view};
use crate::accounts::Principal;
use crate::deploy::{Deployer, Settings};
use crate::domain::{BuildStatus, ConfigChange, ConfigValue, Error, Instance, InstanceStatus};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

/// How often a build's log is looked at while it is followed.
const BUILD_POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing a quiet stream, and notices a browser
/// that went away.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// A failed action as a flash: the core's message (internal causes go to the log only).
pub(super) fn failed(what: &str, e: Error) -> Flash {
    match e {
        Error::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "{what} failed");
            Flash::err(format!(
                "{what} failed because of a problem on our side; the server log has the details."
            ))
        }
        other => Flash::err(sentence(&format!("{what} failed: {other}"))),
    }
}

/// Runs `work` as this visitor's operation on `app` and answers with its outcome; when it takes
/// longer than the console waits, the app page's progress banner says so instead.
pub(super) async fn act(
    ctx: &Ctx,
    ops: &web::Data<Operations>,
    app: &Instance,
    label: String,
    work: impl Future<Output = Flash> + Send + 'static,
) -> HttpResponse {
    let outcome = ops.run(&ctx.session_id, &app.name, label, work).await;
    redirect_with(&ctx.req, &app_path(&app.name), outcome)
}

/// Start, stop and restart: the same deployer call on the app, `verb` while it runs, the
/// flash `done` on success.
async fn lifecycle<W, F>(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: &str,
    verb: &'static str,
    op: W,
    done: fn(&Instance) -> String,
) -> PageResult
where
    W: FnOnce(Deployer, Instance, Principal) -> F + Send + 'static,
    F: Future<Output = crate::domain::Result<Instance>> + Send + 'static,
{
    let ctx = &form.ctx;
    let app = ctx.services.apps.get(&ctx.who, name)?;
    let work = op(ctx.services.deployer.clone(), app.clone(), ctx.who.clone());
    let work = async move {
        match work.await {
            Ok(i) => Flash::ok(done(&i)),
            Err(e) => failed(verb, e),
        }
    };
    Ok(act(ctx, &ops, &app, verb.into(), work).await)
}

pub async fn start(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    lifecycle(
        form,
        ops,
        &name,
        "Starting",
        |d, a, who| async move { d.start(&a, &who).await },
        |i| {
            format!(
                "Started {}: release {} is serving.",
                i.name,
                release_label(i.release)
            )
        },
    )
    .await
}

pub async fn stop(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    lifecycle(
        form,
        ops,
        &name,
        "Stopping",
        |d, a, who| async move { d.stop(&a, &who).await },
        |i| {
            format!(
                "Stopped {}. It serves nothing until you start it again.",
                i.name
            )
        },
    )
    .await
}

pub async fn restart(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    lifecycle(
        form,
        ops,
        &name,
        "Restarting",
        |d, a, who| async move { d.restart(&a, &who).await },
        |i| {
            format!(
                "Restarted {}: a fresh container of {} passed its health check and took over.",
                i.name,
                release_label(i.release)
            )
        },
    )
    .await
}

/// `release`: `v2` or `2`, the release whose code and config vars come back.
pub async fn rollback(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let Ok(target) = f
        .get("release")
        .trim()
        .trim_start_matches(['v', 'V'])
        .parse::<u32>()
    else {
        return Ok(ctx.redirect(
            &app_path(&app.name),
            Flash::err("Nothing was rolled back: choose a release from the list."),
        ));
    };
    let deployer = ctx.services.deployer.clone();
    let (a, who) = (app.clone(), ctx.who.clone());
    let work = async move {
        match deployer.rollback(&a, &who, Some(target)).await {
            Ok(r) => Flash::ok(format!(
                "Rolled back to v{target}: release v{} is serving its code and config vars.",
                r.version
            )),
            Err(e) => failed(&format!("Rolling back to v{target}"), e),
        }
    };
    Ok(act(
        ctx,
        &ops,
        &app,
        format!("Rolling back to v{target} of"),
        work,
    )
    .await)
}

/// What a config change did, from the app before and after it.
fn config_outcome(before: &Instance, after: &Instance, done: &str) -> Flash {
    match (before.release, after.release) {
        (_, Some(v)) if after.release != before.release => {
            if after.status == InstanceStatus::Running {
                Flash::ok(format!("{done}: release v{v} is serving with it."))
            } else {
                Flash::ok(format!(
                    "{done} in release v{v}; it takes effect when the app starts."
                ))
            }
        }
        (None, _) => Flash::ok(format!("{done}; the first deploy will use it.")),
        _ => Flash::ok(format!("{done}: nothing changed, so no new release.")),
    }
}

async fn change_config(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
    change: ConfigChange,
) -> PageResult {
    let ctx = &form.ctx;
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let key = change.key.clone();
    let (verb, label) = match change.value {
        ConfigValue::Unset => (format!("Unset {key}"), format!("Unsetting {key} on")),
        _ => (format!("Set {key}"), format!("Setting {key} on")),
    };
    let deployer = ctx.services.deployer.clone();
    let (a, who) = (app.clone(), ctx.who.clone());
    let work = async move {
        match deployer.set_env(&a, &who, vec![change]).await {
            Ok(after) => config_outcome(&a, &after, &verb),
            Err(e) => failed(&verb, e),
        }
    };
    Ok(act(ctx, &ops, &app, label, work).await)
}

/// `key` and `value`; a `KEY=value` pasted into the key box with no value is split.
pub async fn set_config(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    let mut key = form.fields.get("key").trim().to_string();
    let mut value = form.fields.get("value").to_string();
    if value.is_empty()
        && let Some((k, v)) = key.clone().split_once('=')
    {
        (key, value) = (k.trim().to_string(), v.to_string());
    }
    // Browsers send textarea line breaks as CRLF; a config var holds what was typed.
    let value = value.replace("\r\n", "\n");
    if key.is_empty() {
        let ctx = &form.ctx;
        let app = ctx.services.apps.get(&ctx.who, &name)?;
        return Ok(ctx.redirect(
            &app_path(&app.name),
            Flash::err("Nothing was set: give the config var a name."),
        ));
    }
    // A checked box marks the var secret; an unchecked one leaves its mark as it is.
    let secret = (form.fields.get("secret") == "on").then_some(true);
    let change = ConfigChange {
        secret,
        ..ConfigChange::set(key, value)
    };
    change_config(form, ops, name, change).await
}

pub async fn unset_config(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    let key = form.fields.get("key").trim().to_string();
    {
        let ctx = &form.ctx;
        let app = ctx.services.apps.get(&ctx.who, &name)?;
        if !app.env.contains_key(key.as_str()) {
            return Ok(ctx.redirect(
                &app_path(&app.name),
                Flash::err(format!("{} has no config var {key}.", app.name)),
            ));
        }
    }
    change_config(form, ops, name, ConfigChange::unset(key)).await
}

/// Memory (MiB), CPU (cores), health check path and deploy branch; an empty box keeps its value.
pub async fn settings(
    form: SignedForm,
    ops: web::Data<Operations>,
    name: web::Path<String>,
) -> PageResult {
    let (ctx, f) = (&form.ctx, &form.fields);
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let given = |field: &str| Some(f.get(field).trim()).filter(|v| !v.is_empty());
    let parsed = (|| -> Result<Settings, Error> {
        let memory_mb = given("memory")
            .map(|m| {
                m.parse::<u32>().map_err(|_| {
                    Error::invalid("memory", "memory must be a whole number of MiB, like 512")
                })
            })
            .transpose()?;
        let cpu = given("cpu")
            .map(|c| {
                c.parse::<f64>()
                    .ok()
                    .filter(|c| c.is_finite())
                    .ok_or_else(|| Error::invalid("cpu", "CPU must be a number of cores, like 0.5"))
            })
            .transpose()?;
        Ok(Settings {
            memory_mb,
            cpu,
            health_path: given("health_path").map(String::from),
            deploy_branch: given("deploy_branch").map(String::from),
            read_only_rootfs: match given("read_only_rootfs") {
                None => None,
                Some("on") => Some(true),
                Some("off") => Some(false),
                Some(_) => {
                    return Err(Error::invalid(
                        "read_only_rootfs",
                        "the root filesystem is either read-only or writable",
                    ));
                }
            },
        })
    })();
    let settings = match parsed {
        Ok(s) => s,
        Err(e) => return Ok(ctx.redirect(&app_path(&app.name), failed("Saving settings", e))),
    };
    let deployer = ctx.services.deployer.clone();
    let (a, who) = (app.clone(), ctx.who.clone());
    let work = async move {
        match deployer.update_settings(&a, &who, settings).await {
            Ok(i) => {
                let mut notes = vec![format!("Saved the settings of {}.", i.name)];
                if (i.memory_mb, i.cpu) != (a.memory_mb, a.cpu)
                    && i.status == InstanceStatus::Running
                {
                    notes.push("The new limits apply to the running container now.".into());
                }
                if i.deploy_branch != a.deploy_branch {
                    notes.push(format!("Pushes to {} deploy from now on.", i.deploy_branch));
                }
                if i.read_only_rootfs != a.read_only_rootfs {
                    notes.push(if i.read_only_rootfs {
                        "Its containers now start with a read-only root filesystem.".into()
                    } else {
                        "Its containers now start with a writable root filesystem.".into()
                    });
                }
                if i.health_path != a.health_path {
                    notes.push(format!("The next deploy is checked at {}.", i.health_path));
                }
                Flash::ok(notes.join(" "))
            }
            Err(e) => failed("Saving settings", e),
        }
    };
    Ok(act(ctx, &ops, &app, "Saving the settings of".into(), work).await)
}

pub async fn cancel_build(form: SignedForm, name: web::Path<String>) -> PageResult {
    let ctx = &form.ctx;
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let flash = match ctx.services.deployer.cancel(&app) {
        Ok(()) => Flash::ok(format!(
            "Cancelling the deploy of {}; what was serving keeps serving.",
            app.name
        )),
        Err(e) => failed("Cancelling", e),
    };
    Ok(ctx.redirect(&app_path(&app.name), flash))
}

pub async fn build(ctx: Ctx, path: web::Path<(String, String)>) -> PageResult {
    let (name, id) = path.into_inner();
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let (build, log) = ctx.services.deployer.build_log(&app, &id)?;
    let page = BuildPage {
        layout: Layout::signed_in(&ctx, format!("Build {} of {}", build.id, app.name), "apps"),
        app: AppRows::new(&ctx.services).row(&app),
        build: BuildRow::from(&build),
        commit_full: build
            .source_image
            .clone()
            .unwrap_or_else(|| build.commit.clone()),
        log,
    };
    render(&ctx.req, StatusCode::OK, &page)
}

/// An SSE `data` value: one line, no carriage returns (build tools redraw with `\r`).
fn clean(line: &str) -> String {
    line.replace('\r', "").replace('\n', " ")
}

fn event_stream(
    body: impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

#[derive(serde::Deserialize)]
pub struct FromOffset {
    from: Option<usize>,
}

struct Follow {
    offset: usize,
    done: bool,
    quiet_since: Instant,
}

/// A build's log as server-sent events from byte `from` (or the browser's `Last-Event-ID`,
/// which each event sets to the offset after it, so a reconnect resumes without repeating):
/// whole lines while it runs, then `event: done` with its outcome.
pub async fn build_stream(
    ctx: Ctx,
    path: web::Path<(String, String)>,
    q: web::Query<FromOffset>,
) -> PageResult {
    let (name, id) = path.into_inner();
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    ctx.services.deployer.build_log(&app, &id)?;
    let resume = ctx
        .req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let offset = resume.or(q.from).unwrap_or(0);
    let deployer = ctx.services.deployer.clone();
    // A build cannot run longer than the deploy timeout; the stream ends by then regardless.
    let deadline =
        Instant::now() + Duration::from_secs(ctx.services.config.deploy_timeout) + KEEPALIVE;
    let start = Follow {
        offset,
        done: false,
        quiet_since: Instant::now(),
    };
    let body = futures_util::stream::unfold(start, move |mut st| {
        let (deployer, app, id) = (deployer.clone(), app.clone(), id.clone());
        async move {
            if st.done {
                return None;
            }
            let mut first = true;
            loop {
                if !first {
                    tokio::time::sleep(BUILD_POLL).await;
                }
                first = false;
                let (build, text) = match deployer.build_log(&app, &id) {
                    Ok(b) => b,
                    Err(e) => {
                        st.done = true;
                        let frame = format!("event: failure\ndata: {}\n\n", clean(&e.to_string()));
                        return Some((Ok(web::Bytes::from(frame)), st));
                    }
                };
                let finished = build.status != BuildStatus::Running || Instant::now() > deadline;
                let mut out = String::new();
                // Shorter than what was sent: the log is between memory and the store.
                if text.len() > st.offset && text.is_char_boundary(st.offset) {
                    let chunk = &text[st.offset..];
                    let end = if finished {
                        chunk.len()
                    } else {
                        chunk.rfind('\n').map_or(0, |i| i + 1)
                    };
                    if end > 0 {
                        st.offset += end;
                        out.push_str(&format!("id: {}\n", st.offset));
                        for line in chunk[..end].lines() {
                            out.push_str(&format!("data: {}\n", clean(line)));
                        }
                        out.push('\n');
                    }
                }
                if finished {
                    st.done = true;
                    out.push_str(&format!("event: done\ndata: {}\n\n", build.status.as_str()));
                }
                if out.is_empty() && st.quiet_since.elapsed() >= KEEPALIVE {
                    out.push_str(": still building\n\n");
                }
                if !out.is_empty() {
                    st.quiet_since = Instant::now();
                    return Some((Ok(web::Bytes::from(out)), st));
                }
            }
        }
    });
    Ok(event_stream(body))
}

/// The app's output as server-sent events: the last 100 lines, then new ones as they come;
/// `event: end` when the container stops (the script then stops listening).
pub async fn logs_stream(ctx: Ctx, name: web::Path<String>) -> PageResult {
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let lines = ctx.services.deployer.logs(&app, Some(100), true).await?;
    let head = futures_util::stream::once(async { "retry: 10000\n\n".to_string() });
    let lines = lines.map(|l| match l {
        Ok(l) => format!("data: {}\n\n", clean(&l)),
        Err(e) => format!("event: failure\ndata: {}\n\n", clean(&e.to_string())),
    });
    let tail = futures_util::stream::once(async { "event: end\ndata: \n\n".to_string() });
    let body = head
        .chain(lines)
        .chain(tail)
        .map(|s| Ok::<_, actix_web::Error>(web::Bytes::from(s)));
    Ok(event_stream(body))
}

/// What the script polls while something runs: the badge, and whether to keep waiting.
pub async fn status(ctx: Ctx, ops: web::Data<Operations>, name: web::Path<String>) -> PageResult {
    let app = ctx.services.apps.get(&ctx.who, &name)?;
    let v = status_view(app.status);
    let busy = app.status == InstanceStatus::Building || ops.busy(&ctx.session_id, &app.name);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": v.class,
        "label": v.label,
        "hint": v.hint,
        "release": app.release,
        "busy": busy,
    })))
}
