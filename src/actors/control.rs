//! Control actor: serves the Unix control socket (mode 0600). Each request becomes a typed
//! message to the supervisor, which validates and applies it, so a bad `set` leaves the running
//! configuration untouched. Malformed requests get an error reply; the socket stays up.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Framed};

use crate::actors::server_task::ServerTask;
use crate::core::control_protocol::{parse_request, Request, Response, MAX_LINE_BYTES};
use crate::core::part::{spawn_linked, PartEntry};
use crate::core::{AgentContext, ControlCommand, ControlError, SupervisorMsg};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ControlServer;

pub struct ControlArgs {
    pub socket: PathBuf,
    pub ctx: Arc<AgentContext>,
    pub supervisor: ActorRef<SupervisorMsg>,
}

pub struct ControlState {
    socket: PathBuf,
    server: ServerTask,
}

pub enum ControlMsg {
    AcceptFailed(String),
}

/// The registry entry of this service.
pub fn part() -> PartEntry {
    PartEntry::service("control", |part| {
        let args = ControlArgs {
            socket: part.config.control.socket.clone(),
            ctx: part.ctx,
            supervisor: part.supervisor,
        };
        spawn_linked(part.parent, ControlServer, args)
    })
    .essential()
}

fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    let describe = |what: &str, e: std::io::Error| {
        format!(
            "control socket {} (control.socket): {what}: {e}",
            path.display()
        )
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| describe("cannot create its directory", e))?;
    }
    if path.exists() {
        // A live agent answers; a stale file from a crash does not and is replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {} is in use by another running agent",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| describe("cannot remove stale socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| describe("cannot bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| describe("cannot set mode 0600", e))?;
    Ok(listener)
}

impl Actor for ControlServer {
    type Msg = ControlMsg;
    type State = ControlState;
    type Arguments = ControlArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let listener = bind_socket(&args.socket)?;
        tracing::info!(socket = %args.socket.display(), "control socket listening");
        let ctx = args.ctx;
        let supervisor = args.supervisor;
        let server = ServerTask::spawn(|token| async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                match accepted {
                    Ok((stream, _)) => {
                        let ctx = ctx.clone();
                        let supervisor = supervisor.clone();
                        tokio::spawn(serve_connection(stream, ctx, supervisor));
                    }
                    Err(e) => {
                        let _ = myself.cast(ControlMsg::AcceptFailed(e.to_string()));
                        return;
                    }
                }
            }
        });
        Ok(ControlState {
            socket: args.socket,
            server,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.server.stop("control", Duration::from_secs(1)).await;
        let _ = std::fs::remove_file(&state.socket);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ControlMsg::AcceptFailed(e) => Err(format!("control socket accept failed: {e}").into()),
        }
    }
}

async fn serve_connection(
    stream: UnixStream,
    ctx: Arc<AgentContext>,
    supervisor: ActorRef<SupervisorMsg>,
) {
    // Lines as bytes, decoded here: a line that is not UTF-8 gets an error reply on a connection
    // that stays usable (a text codec would end the connection without a word).
    let codec =
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), b"\n".to_vec(), MAX_LINE_BYTES);
    let mut lines = Framed::new(stream, codec);
    while let Some(line) = lines.next().await {
        let (response, close) = match line {
            Ok(bytes) => match std::str::from_utf8(&bytes) {
                Ok(line) => match parse_request(line.strip_suffix('\r').unwrap_or(line)) {
                    Ok(request) => (execute(request, &ctx, &supervisor).await, false),
                    Err(e) => (Response::error(e), false),
                },
                Err(e) => (
                    Response::error(format!("request is not UTF-8 text ({e})")),
                    false,
                ),
            },
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => (
                Response::error(format!(
                    "request longer than {MAX_LINE_BYTES} bytes; closing connection"
                )),
                true,
            ),
            Err(AnyDelimiterCodecError::Io(e)) => {
                tracing::debug!(error = %e, "control connection read error");
                return;
            }
        };
        let text = serde_json::to_string(&response)
            .unwrap_or_else(|e| format!(r#"{{"ok":false,"error":"cannot encode reply: {e}"}}"#));
        if lines.send(text).await.is_err() || close {
            return;
        }
    }
}

pub(crate) async fn call<T: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg>,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> SupervisorMsg,
) -> Result<T, ControlError> {
    match supervisor.call(msg, Some(CALL_TIMEOUT)).await {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) => Err(ControlError::Timeout),
        Ok(CallResult::SenderError) => Err(ControlError::Unavailable(
            "supervisor dropped the request".into(),
        )),
        Err(e) => Err(ControlError::Unavailable(e.to_string())),
    }
}

/// Runs one request: status from the status board, everything else as one typed command to the
/// supervisor (which validates, applies and answers).
pub async fn execute(
    request: Request,
    ctx: &AgentContext,
    supervisor: &ActorRef<SupervisorMsg>,
) -> Response {
    let command = match request {
        Request::Status => {
            return Response::ok(serde_json::to_value(ctx.status.status()).unwrap_or_default())
        }
        Request::Enable { name } => ControlCommand::Enable(name),
        Request::Disable { name } => ControlCommand::Disable(name),
        Request::Set { key, value } => ControlCommand::Set { key, value },
        Request::Reload => ControlCommand::Reload,
        Request::Kill { name } => ControlCommand::Kill(name),
    };
    let killing = matches!(command, ControlCommand::Kill(_));
    match call(supervisor, |reply| SupervisorMsg::Control(command, reply)).await {
        Ok(Ok(_)) if killing => Response::ok(json!({ "killed": true })),
        Ok(Ok(actions)) => Response::ok(json!({ "applied": actions })),
        Ok(Err(e)) | Err(e) => Response::error(e.to_string()),
    }
}
