%% @doc The `emqx ctl guard' commands that show the documents of `emqx_guard_report' as text or,
%% with `--json', as one JSON document: `backup_status [--json]', `backup_list [--json]',
%% `backup_list --remote [--json]'; and `sys_events [on|off]', the setting of the `$SYS' events.
%% The facts are gathered once (`emqx_guard_report') and rendered here, so the text and the
%% JSON say the same. A failure is one `Error:' line as text, `{"error": "<line>"}' as JSON.
%% Parses and prints only; called by `emqx_guard_cli', which catches and reports any crash.
-module(emqx_guard_observe_cli).

-import(emqx_guard_cli, [line/1, error_reason/1]).

-export([cmd/1, usage_lines/0]).

%% @doc The usage lines of the commands only this module has (the listings' are their modules').
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [{"guard sys_events [on|off]", "Show or set whether backup, off-site, restore and dead-man events go out on $SYS/brokers/<node>/guard/<event>"}].

%% @doc Runs one of these commands (Args after `guard', as binaries); `not_mine' for any other.
-spec cmd([binary()]) -> ok | not_mine.
cmd([<<"backup_status">>]) -> status(text);
cmd([<<"backup_status">>, <<"--json">>]) -> status(json);
cmd([<<"backup_list">>]) -> list(text);
cmd([<<"backup_list">>, <<"--json">>]) -> list(json);
cmd([<<"backup_list">>, <<"--remote">>]) -> remote(text);
cmd([<<"backup_list">>, <<"--remote">>, <<"--json">>]) -> remote(json);
cmd([<<"backup_list">>, <<"--json">>, <<"--remote">>]) -> remote(json);
cmd([<<"sys_events">>]) -> show_sys_events();
cmd([<<"sys_events">>, Value]) -> set_sys_events(Value);
cmd(_) -> not_mine.

%%--------------------------------------------------------------------

status(json) ->
    json({ok, emqx_guard_report:status()});
status(text) ->
    Doc = emqx_guard_report:status(),
    #{<<"schedule">> := #{<<"zone">> := Zone}} = Doc,
    lists:foreach(fun emqx_guard_cli:line/1, status_lines(Doc, Zone)).

status_lines(Doc, Zone) ->
    #{<<"schedule">> := Schedule, <<"runs">> := #{<<"ok">> := Ok, <<"failed">> := Failed, <<"skipped">> := Skipped}} = Doc,
    #{<<"cron">> := Cron, <<"zone_name">> := ZoneName, <<"keep">> := Keep, <<"catchup">> := Catchup} = Schedule,
    Description =
        case maps:get(<<"description">>, Schedule) of
            null -> <<"?">>;
            D -> D
        end,
    [
        text("schedule: \"~ts\" (~ts)", [Cron, Description]),
        text("zone: ~ts", [zone_text(Zone, ZoneName)]),
        text("keep: ~ts, catch-up window: ~ts", [keep_text(Keep), Catchup]),
        next_fire_line(Doc, Zone)
    ] ++
        [text("catch-up: a run for the missed ~ts starts shortly", [at(Zone, M)]) || #{<<"instant_ms">> := M} <- [maps:get(<<"catchup">>, Doc)]] ++
        [case maps:get(<<"running">>, Doc) of
            null -> <<"state: idle">>;
            #{<<"started_at_ms">> := Started, <<"trigger">> := Trigger} -> text("state: running since ~ts (~ts)", [at(Zone, Started), Trigger])
        end] ++
        offsite_lines(maps:get(<<"offsite">>, Doc), Zone) ++
        last_run_lines(maps:get(<<"last_run">>, Doc), Zone) ++
        emqx_guard_leftovers:note_lines(maps:get(<<"leftovers">>, Doc), Zone) ++
        restore_lines(maps:get(<<"last_restore">>, Doc, null), Zone) ++
        [text("runs: ~B ok, ~B failed, ~B skipped", [Ok, Failed, Skipped])] ++
        [emqx_guard_notify_cli:delivery_line(N) || N <- maps:get(<<"notifications">>, Doc)] ++
        emqx_guard_cluster_view:lines(maps:with([<<"last_skip">>, <<"cluster">>], Doc), Zone).

%% The last restore: when, which file, by which node, its result (and the safety backup).
restore_lines(null, _Zone) ->
    [];
restore_lines(R = #{<<"started_at_ms">> := At, <<"file">> := File, <<"node">> := Node}, Zone) ->
    Result =
        case R of
            #{<<"result">> := <<"ok">>} -> <<"ok">>;
            #{<<"step">> := Step, <<"error">> := Error} -> text("FAILED at ~ts: ~ts", [Step, Error]);
            _ -> <<"FAILED">>
        end,
    Safety = [text("; safety backup ~ts", [S]) || S <- [maps:get(<<"safety">>, R, null)], S =/= null],
    [text("last restore: ~ts of ~ts on ~ts: ~ts~ts", [at(Zone, At), File, Node, Result, Safety])].

keep_text(N) when is_integer(N) -> text("~B newest", [N]);
keep_text(Policy) -> Policy.

zone_text(Zone, Zone) -> Zone;
zone_text(Zone, ZoneName) -> text("~ts (~ts)", [Zone, ZoneName]).

next_fire_line(#{<<"next_fire_ms">> := Next}, Zone) when is_integer(Next) ->
    text("next fire: ~ts", [at(Zone, Next)]);
next_fire_line(#{<<"next_fire_error">> := null}, _Zone) ->
    <<"next fire: none">>;
next_fire_line(#{<<"next_fire_error">> := Why}, _Zone) ->
    <<"next fire: none; ", Why/binary>>.

last_run_lines(null, _Zone) ->
    [<<"last run: none yet">>];
last_run_lines(Run = #{<<"started_at_ms">> := Started, <<"duration_ms">> := Duration, <<"result">> := Result}, Zone) ->
    [text("last run: ~ts, took ~ts, ~ts (~ts)", [
        at(Zone, Started), emqx_guard_render:duration_ms(Duration), Result, maps:get(<<"trigger">>, Run)
    ])] ++
        [text("  file: ~ts", [P]) || P <- [maps:get(<<"path">>, Run)], P =/= null] ++
        [text("  size: ~ts", [emqx_guard_render:size(S)]) || S <- [maps:get(<<"size">>, Run)], S =/= null] ++
        [text("  error: ~ts", [E]) || E <- [maps:get(<<"error">>, Run)], E =/= null] ++
        [text("  warning: ~ts", [W]) || W <- maps:get(<<"warnings">>, Run)].

%% The off-site part: where copies go, then the queue: what it uploads now and what waits, the
%% upload of the newest backup off-site, the last error, remote retention when it is paused.
offsite_lines(null, _Zone) ->
    [];
offsite_lines(Offsite = #{<<"destination">> := Where, <<"encrypted">> := Encrypted}, Zone) ->
    Enc =
        case Encrypted of
            true -> <<"encrypted with age">>;
            false -> <<"not encrypted">>
        end,
    Head = text("off-site: ~ts (~ts)", [Where, Enc]),
    case maps:get(<<"queue">>, Offsite) of
        null -> [Head, <<"  uploads: the off-site queue is not running">>];
        Queue -> [Head, queue_line(Queue, Zone)] ++ upload_lines(Offsite, Zone)
    end.

queue_line(#{<<"running">> := Running, <<"waiting">> := Waiting, <<"retry_at_ms">> := RetryAt}, Zone) ->
    More = iolist_to_binary([["; waiting: ", W] || W <- Waiting]),
    case {Running, RetryAt} of
        {#{<<"kind">> := check, <<"started_at_ms">> := S}, _} ->
            text("  uploads: looking at the bucket (since ~ts)~ts", [at(Zone, S), More]);
        {#{<<"file">> := null, <<"started_at_ms">> := S}, _} ->
            text("  uploads: uploading what is missing, then remote retention (since ~ts)~ts", [at(Zone, S), More]);
        {#{<<"file">> := F, <<"started_at_ms">> := S}, _} ->
            text("  uploads: uploading ~ts (since ~ts)~ts", [F, at(Zone, S), More]);
        {null, null} when Waiting =:= [] ->
            <<"  uploads: none waiting">>;
        {null, null} ->
            text("  uploads: none running~ts", [More]);
        {null, _} ->
            text("  uploads: tried again at ~ts~ts", [at(Zone, RetryAt), More])
    end.

upload_lines(#{<<"newest_upload">> := Newest, <<"last_error">> := Error, <<"retention">> := Retention}, Zone) ->
    [
        text("  newest backup off-site: ~ts, uploaded at ~ts, took ~ts, ~ts~ts", [
            Name, at(Zone, UAt), emqx_guard_render:duration_ms(D), emqx_guard_render:size(B),
            case Reused of
                true -> <<" (already there with the same SHA-256: not sent again)">>;
                false -> <<>>
            end
        ])
     || #{<<"name">> := Name, <<"at_ms">> := UAt, <<"duration_ms">> := D, <<"bytes">> := B, <<"reused">> := Reused} <- [Newest]
    ] ++
        [
            case Failing of
                true -> text("  last error: ~ts: ~ts", [at(Zone, EAt), E]);
                false -> text("  last error: ~ts: ~ts (the copies since then succeeded)", [at(Zone, EAt), E])
            end
         || #{<<"at_ms">> := EAt, <<"error">> := E, <<"failing">> := Failing} <- [Error]
        ] ++
        [<<"  remote retention: ", Line/binary>> || #{<<"line">> := Line} <- [Retention]].

%%--------------------------------------------------------------------

list(json) ->
    json(emqx_guard_report:backups());
list(text) ->
    case emqx_guard_report:backups() of
        {ok, #{<<"dir">> := Dir, <<"backups">> := []}} ->
            line(text("No backups in ~ts", [Dir]));
        {ok, #{<<"dir">> := Dir, <<"backups">> := Backups}} ->
            #{backup_timezone := Zone} = emqx_guard_settings:get(),
            line(text("~B backup(s) in ~ts, newest first:", [length(Backups), Dir])),
            lists:foreach(fun(B) -> line(backup_line(Zone, B)) end, Backups);
        {error, Why} ->
            error_reason(Why)
    end.

%% One backup: name, size, time, its verdict and when it was reached, `pinned', `with plugins'.
backup_line(Zone, B = #{<<"name">> := Name, <<"size">> := Size, <<"mtime_ms">> := MTime}) ->
    Checked =
        case maps:get(<<"checked_at_ms">>, B) of
            null -> [];
            At -> [" (checked ", at(Zone, At), ")"]
        end,
    Verdict =
        case maps:get(<<"state">>, B) of
            verified -> [<<"verified">> | Checked];
            not_verified -> [text("NOT VERIFIED: ~ts", [maps:get(<<"error">>, B)]) | Checked];
            being_written -> <<"being written by the running backup">>
        end,
    Pinned = [<<"pinned">> || maps:get(<<"pinned">>, B, false)],
    %% its plugins companion beside it (`emqx_guard_companion')
    Plugins = [<<"with plugins">> || maps:get(<<"plugins">>, B, false)],
    iolist_to_binary(["  ", lists:join("  ", [Name, emqx_guard_render:size(Size), at(Zone, MTime), Verdict | Pinned ++ Plugins])]).

remote(json) ->
    json(emqx_guard_report:remote_backups());
remote(text) ->
    case emqx_guard_report:remote_backups() of
        {ok, #{<<"destination">> := Where, <<"backups">> := []}} ->
            line(["No off-site backups in ", Where]);
        {ok, #{<<"destination">> := Where, <<"backups">> := Remote}} ->
            #{backup_timezone := Zone} = emqx_guard_settings:get(),
            line(text("~B off-site backup(s) in ~ts, newest first:", [length(Remote), Where])),
            lists:foreach(fun(R) -> line(remote_line(Zone, R)) end, Remote);
        {error, Why} ->
            error_reason(Why)
    end.

remote_line(Zone, #{<<"name">> := Name, <<"size">> := Size, <<"mtime_ms">> := MTime, <<"encrypted">> := Encrypted}) ->
    Enc =
        case Encrypted of
            true -> <<"encrypted (age)">>;
            false -> <<"not encrypted">>
        end,
    iolist_to_binary(["  ", lists:join("  ", [Name, emqx_guard_render:size(Size), at(Zone, MTime), Enc])]).

%% One JSON document: the facts, or the error line.
json({ok, Doc}) ->
    line(emqx_guard_json:pretty(Doc));
json({error, Why}) ->
    line(emqx_guard_json:pretty(#{<<"error">> => emqx_guard_outcome:format_error(Why)})).

%%--------------------------------------------------------------------

show_sys_events() ->
    case maps:get(sys_events, emqx_guard_settings:get()) of
        true -> line("sys_events = on (backup, off-site, restore and dead-man events go out on $SYS/brokers/<node>/guard/<event>)");
        false -> line("sys_events = off")
    end.

set_sys_events(Value) ->
    case emqx_guard_settings_sync:update(#{sys_events => Value}) of
        {ok, _New, Unreached} ->
            show_sys_events(),
            lists:foreach(fun({Node, Why}) -> line(text("Warning: not applied on ~ts: ~ts", [Node, Why])) end, Unreached);
        {error, Why} ->
            error_reason(Why)
    end.

at(Zone, Ms) ->
    emqx_guard_render:in_zone(Zone, Ms).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
