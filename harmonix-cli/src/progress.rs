//! Rendering the engine's events: a spinner per stack on a terminal
//! (indicatif), one line per event otherwise, JSON lines with
//! `--output json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use harmonix_core::engine::events::Event;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Format;

const OK: Style = AnsiColor::Green.on_default().bold();
const BAD: Style = AnsiColor::Red.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default().bold();
const DIM: Style = Style::new().dimmed();

/// Receives events from the engine (from any thread) and shows them.
pub struct Progress {
    format: Format,
    /// `Some` when stderr is a terminal and the format is text.
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    by_stack: Mutex<HashMap<String, ProgressBar>>,
    style: ProgressStyle,
}

impl Progress {
    pub fn new(format: Format) -> Self {
        let bars = (format == Format::Text && std::io::stderr().is_terminal()).then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            by_stack: Mutex::new(HashMap::new()),
            style: ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        });
        Self { format, bars }
    }

    /// Print a line above the bars (or on stderr).
    pub fn line(&self, text: &str) {
        if let Some(b) = &self.bars {
            let _ = b.multi.println(text);
        } else {
            let mut err = anstream::stderr().lock();
            let _ = writeln!(err, "{text}");
        }
    }

    /// Show one event.
    pub fn event(&self, e: &Event) {
        if self.format == Format::Json {
            if let Ok(line) = serde_json::to_string(e) {
                let mut out = anstream::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            return;
        }
        match e {
            Event::Waiting { stack, status } => {
                self.line(&format!(
                    "{DIM}waiting for{DIM:#} {stack} {DIM}({status}) to finish its running operation{DIM:#}"
                ));
            }
            Event::Started { stack, action } => {
                self.start(stack, &format!("{} started", action.as_str()));
            }
            Event::ResourceProgress {
                stack,
                logical_id,
                resource_type,
                status,
                reason,
            } => {
                let msg = format!(
                    "{logical_id} ({resource_type}) {status}{}",
                    reason
                        .as_deref()
                        .filter(|r| !r.is_empty())
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                match &self.bars {
                    Some(b) => {
                        if let Some(pb) = lock(&b.by_stack).get(stack) {
                            pb.set_message(msg);
                        }
                    }
                    None => self.line(&format!("  {DIM}{stack}: {msg}{DIM:#}")),
                }
            }
            Event::StackDone { stack, status } => {
                self.finish(stack, &format!("{OK}✓{OK:#} {stack} {status}"));
            }
            Event::StackFailed {
                stack,
                status,
                reason,
            } => {
                let status = status.as_deref().unwrap_or("failed");
                self.finish(stack, &format!("{BAD}✗{BAD:#} {stack} {status}: {reason}"));
            }
            Event::Skipped { stack, because } => {
                self.line(&format!(
                    "{WARN}-{WARN:#} {stack} skipped: {because}{}",
                    if because == "cancelled" {
                        ""
                    } else {
                        " did not succeed"
                    }
                ));
            }
            Event::Locked { lock } => self.line(&format!("{DIM}locked {lock}{DIM:#}")),
            Event::CatalogWritten { path, outcome } => {
                self.line(&format!("{OK}catalog{OK:#} {path} {outcome}"));
            }
            Event::Warning { message } => {
                self.line(&format!("{WARN}warning{WARN:#}: {message}"));
            }
            _ => {}
        }
    }

    fn start(&self, stack: &str, msg: &str) {
        match &self.bars {
            Some(b) => {
                let pb = b.multi.add(ProgressBar::new_spinner());
                pb.set_style(b.style.clone());
                pb.set_prefix(stack.to_owned());
                pb.set_message(msg.to_owned());
                pb.enable_steady_tick(Duration::from_millis(120));
                lock(&b.by_stack).insert(stack.to_owned(), pb);
            }
            None => self.line(&format!("{stack}: {msg}")),
        }
    }

    fn finish(&self, stack: &str, line: &str) {
        match &self.bars {
            Some(b) => {
                if let Some(pb) = lock(&b.by_stack).remove(stack) {
                    pb.finish_and_clear();
                }
                let _ = b.multi.println(line);
            }
            None => self.line(line),
        }
    }

    /// Stop every spinner still running.
    pub fn clear(&self) {
        if let Some(b) = &self.bars {
            for (_, pb) in lock(&b.by_stack).drain() {
                pb.finish_and_clear();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
