%% @doc The OTP application EMQX starts as the plugin.
%%
%% `start/2' starts the supervisor, registers the `guard' command and the collector of the
%% plugin's metrics (`emqx_guard_metrics', in prometheus.erl's `default' registry that EMQX's
%% scrape renders); it does nothing slow (EMQX gives it 10 s). `stop/1' removes the collector
%% and the command (both registrations live in EMQX's tables and would outlive us) and cancels
%% every background job of the core still running (e.g. a `guard backup_verify' typed just
%% before the stop), so no thread of ours outlives the plugin.
%%
%% EMQX 5.7+ also calls, on every node, `on_config_changed/2' when the
%% dashboard saves the plugin config, (5.9+) `on_health_check/1', and (6.1.1+)
%% `on_handle_api_call/4' for the plugin's own API and page (`emqx_guard_api').
-module(emqx_guard_app).

-behaviour(application).

-include_lib("kernel/include/logger.hrl").

-export([start/2, stop/1, on_config_changed/2, on_health_check/1, on_handle_api_call/4]).

%% @doc Starts the supervision tree and registers the `guard' command.
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    %% the settings file may have changed while the plugin was stopped
    ok = emqx_guard_settings:forget(),
    case emqx_guard_sup:start_link() of
        {ok, Sup} ->
            ok = emqx_guard_emqx:register_command(emqx_guard_cli, cmd),
            ok = emqx_guard_metrics:register(),
            {ok, Sup};
        {error, _} = Error ->
            Error
    end.

%% @doc Removes the metrics' collector and the `guard' command, and cancels the background jobs
%% still running.
-spec stop(term()) -> ok.
stop(_State) ->
    _ = emqx_guard_metrics:deregister(),
    _ = emqx_guard_emqx:unregister_command(),
    case emqx_guard_core:cancel_all() of
        {ok, 0} -> ok;
        {ok, N} -> ?LOG_WARNING(#{msg => emqx_guard_jobs_cancelled, count => N, reason => plugin_stopping});
        {error, _} -> ok
    end,
    emqx_guard_settings:forget().

%% @doc Validates the config the dashboard saved (binary keys) and applies the keys whose value
%% differs between Old and New. The dashboard's copy never sees changes made with
%% `emqx ctl guard', so applying all of New would write its stale values back; all of New is
%% still validated, so a bad value is refused. May be called while the plugin is stopped: then
%% it is only persisted, and read at the next start. While the plugin runs the change goes
%% through its settings server (a new version, the scheduler re-armed); when that server is
%% not there, or does not answer in time (`cluster' option `call_timeout_ms'), the answer is an
%% error line.
%%
%% The answer and the log never show a secret: a failure's line (`emqx_guard_outcome:format_error/1';
%% it may quote Old and New) goes through `emqx_guard_redact:term/2' with Old and New as the
%% known settings, and the dashboard gets one line.
-spec on_config_changed(map(), map()) -> ok | {error, binary()}.
on_config_changed(Old, New) ->
    try apply_config(Old, New) of
        ok ->
            ok;
        {error, Why} ->
            Line = emqx_guard_redact:term(emqx_guard_outcome:format_error(Why), [Old, New]),
            ?LOG_WARNING(#{msg => emqx_guard_config_rejected, reason => Line}),
            {error, Line}
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{
                msg => emqx_guard_config_change_failed,
                class => Class,
                reason => emqx_guard_redact:term(Reason, [Old, New]),
                stacktrace => emqx_guard_redact:term(Stack, [Old, New])
            }),
            {error, failure_line(Class, emqx_guard_redact:term(Reason, [Old, New]))}
    end.

apply_config(Old, New) when is_map(New) ->
    case emqx_guard_settings:validate_changes(New) of
        {ok, _} ->
            apply_changed(emqx_guard_settings:changed(Old, New));
        {error, _} = Error ->
            Error
    end;
apply_config(_Old, _New) ->
    {error, {invalid_value, <<"the plugin config must be a map">>}}.

apply_changed(Changed) when map_size(Changed) =:= 0 ->
    ok;
apply_changed(Changed) ->
    Result =
        case whereis(emqx_guard_sup) of
            %% stopped: only saved, read at the next start
            undefined -> emqx_guard_settings:change(Changed);
            %% running: a new version (EMQX calls every node itself), the scheduler re-arms
            _Sup -> emqx_guard_settings_sync:update_local(Changed)
        end,
    case Result of
        {error, _} = Error -> Error;
        _ -> ok
    end.

%% What the dashboard shows for a change that failed (Reason is redacted): one line.
failure_line(exit, {timeout, {gen_server, call, _}}) ->
    <<"emqx_guard did not apply the config in time (its settings server is busy); it may still apply it: "
      "check with emqx ctl guard">>;
failure_line(exit, {noproc, {gen_server, call, _}}) ->
    <<"emqx_guard's settings server is not running (the plugin restarts it); save again in a moment">>;
failure_line(exit, {Cause, {gen_server, call, [Server | _]}}) ->
    unicode:characters_to_binary(io_lib:format(
        "cannot apply the config: ~0tp stopped while applying it (~0tP); the change may be partly applied: "
        "check with emqx ctl guard",
        [Server, Cause, 12]
    ));
failure_line(Class, Reason) ->
    unicode:characters_to_binary(io_lib:format("cannot apply the config: ~0tp ~0tP", [Class, Reason, 12])).

%% @doc `ok' while backups work; `{error, Line}' while the cluster's last backup failed (on any
%% node), the export is unsupported, or the schedule cannot be computed.
-spec on_health_check(map()) -> ok | {error, binary()}.
on_health_check(_Opts) ->
    try emqx_guard_scheduler:health() of
        ok -> ok;
        {error, Why} -> {error, emqx_guard_outcome:format_error(Why)}
    catch
        exit:{noproc, _} -> {error, <<"emqx_guard is not running">>};
        _:Reason -> {error, iolist_to_binary(io_lib:format("health check failed: ~tp", [Reason]))}
    end.

%% @doc EMQX 6.1.1+'s plugin API gateway: a request to `/api/v5/plugin_api/emqx_guard/...'
%% (Method, the path after the plugin's name, Request, Context), answered by `emqx_guard_api'.
-spec on_handle_api_call(atom(), [binary()], map(), map()) -> emqx_guard_api:answer().
on_handle_api_call(Method, Path, Request, Context) ->
    emqx_guard_api:handle(Method, Path, Request, Context).
