%% @doc The `emqx ctl guard ...' commands: parses the arguments, asks the
%% scheduler / backup modules, prints the answer. Nothing else.
%%
%% The callback always returns `ok' and never crashes: EMQX hides a crash from
%% the user, and a crash on the `usage' atom would break `emqx ctl' help for
%% every command. Every failure prints one line starting with `Error:', the reason's line made
%% by `emqx_guard_outcome:format_error/1' (`error_reason/1').
-module(emqx_guard_cli).

-include_lib("kernel/include/logger.hrl").

-export([cmd/1, usage_lines/0, looks_glob_expanded/1]).
%% For the other `guard' command modules: how a line and an error line are printed.
-export([line/1, error_line/1, error_reason/1, bad_argument/1, set/2]).

-define(PREVIEW_FIRES, 3).

%% @doc The callback registered with emqx_ctl: `Args' is the list of charlists
%% after `guard', or the atom `usage'.
-spec cmd(usage | [string() | binary()] | term()) -> ok.
cmd(Args) ->
    try
        dispatch(Args)
    catch
        exit:{noproc, _} ->
            line("Error: the emqx_guard scheduler is not running");
        exit:{timeout, _} ->
            line("Error: the emqx_guard scheduler did not answer in time");
        Class:Reason:Stack ->
            %% arguments may hold a password or a webhook URL with its secret: redacted, also
            %% where the stack trace carries them
            ?LOG_ERROR(#{
                msg => emqx_guard_cli_crash,
                args => emqx_guard_redact:args(Args),
                class => Class,
                reason => emqx_guard_redact:term(Reason),
                stacktrace => [arity_only(F) || F <- Stack]
            }),
            line(text("Error: internal error: ~tp", [emqx_guard_redact:term(Reason)]))
    end,
    ok.

%% A stack frame with its argument list (present after a function_clause) replaced by the arity.
arity_only({M, F, Args, Loc}) when is_list(Args) -> {M, F, length(Args), Loc};
arity_only(Frame) -> Frame.

%% @doc The usage list in `emqx_ctl:usage/1' format.
-spec usage_lines() -> [{string(), string()}].
usage_lines() ->
    [
        {"guard backup_cron [<expr>]", "Show or set the backup schedule (crontab(5), quoted: '0 12 * * 0')"},
        {"guard backup_timezone [<zone>]", "Show or set the schedule's time zone (IANA name or local)"},
        {"guard backup_catchup [<duration>]", "Show or set how late a missed backup may still run at start (24h; 0 = off)"},
        {"guard backup_io_limit [<rate>]", "Show or set how fast backups are read back (e.g. 50MB/s; default off)"},
        {"guard backup_plugins_max_size [<size>]", "Show or set the largest plugin package a backup carries (100MiB; 0: none)"},
        {"guard backup_now", "Run one backup now, printing each step as it starts and ends, then the result"}
    ] ++ emqx_guard_retention_cli:usage_lines() ++ emqx_guard_backups_cli:usage_lines() ++
        emqx_guard_offsite_cli:usage_lines() ++ emqx_guard_restore_cli:usage_lines() ++
        [{"guard backup_status [--json]", "Show the schedule, next fire, last run, run counts and the off-site copies"}] ++
        emqx_guard_notify_cli:usage_lines() ++ emqx_guard_observe_cli:usage_lines().

%%--------------------------------------------------------------------
%% Dispatch
%%--------------------------------------------------------------------

dispatch(usage) ->
    usage();
dispatch(Args) when is_list(Args) ->
    case [to_bin(A) || A <- Args] of
        [<<"backup_cron">>] -> show_cron();
        [<<"backup_cron">> | Parts] -> set_cron(Parts);
        [<<"backup_timezone">>] -> show_timezone();
        [<<"backup_timezone">>, Zone] -> set(#{backup_timezone => Zone}, fun show_timezone/0);
        [<<"backup_catchup">>] -> show_catchup();
        [<<"backup_catchup">>, D] -> set(#{backup_catchup => D}, fun show_catchup/0);
        [<<"backup_io_limit">>] -> show_io_limit();
        [<<"backup_io_limit">>, Rate] -> set(#{backup_io_limit => Rate}, fun show_io_limit/0);
        [<<"backup_plugins_max_size">>] -> show_plugins_max_size();
        [<<"backup_plugins_max_size">>, Size] -> set(#{backup_plugins_max_size => Size}, fun show_plugins_max_size/0);
        [<<"backup_now">>] -> backup_now();
        Other ->
            %% guard backup_status|backup_list [--remote] [--json]|sys_events (emqx_guard_observe_cli),
            %% backup_keep|backup_remote_keep|backup_pin|backup_unpin|backup_prune --dry-run|backup_list
            %% --why (emqx_guard_retention_cli), backup_verify (emqx_guard_backups_cli),
            %% backup_remote|backup_fetch (emqx_guard_offsite_cli), backup_restore (emqx_guard_restore_cli),
            %% notify* (emqx_guard_notify_cli)
            Mods = [emqx_guard_observe_cli, emqx_guard_retention_cli, emqx_guard_backups_cli, emqx_guard_offsite_cli,
                    emqx_guard_restore_cli, emqx_guard_notify_cli],
            case lists:dropwhile(fun(M) -> M:cmd(Other) =:= not_mine end, Mods) of
                [] -> usage();
                _ -> ok
            end
    end;
dispatch(_) ->
    usage().

usage() ->
    emqx_guard_emqx:usage(usage_lines()).

%%--------------------------------------------------------------------
%% Settings
%%--------------------------------------------------------------------

show_cron() ->
    #{backup_cron := Cron} = emqx_guard_settings:get(),
    line(text("backup_cron = \"~ts\"", [Cron])),
    print_preview().

set_cron(Parts) ->
    case looks_glob_expanded(Parts) of
        true ->
            line(text(
                "Error: the shell split or expanded the expression into ~B arguments (~ts); "
                "put it in single quotes, e.g. emqx ctl guard backup_cron '0 12 * * 0'",
                [length(Parts), lists:join(" ", Parts)]
            ));
        false ->
            Expr = iolist_to_binary(lists:join(<<" ">>, [string:trim(P) || P <- Parts])),
            set(#{backup_cron => Expr}, fun show_cron/0, quote_hint(Parts))
    end.

%% Several arguments mean the shell split an unquoted expression, and it may have replaced a
%% `*' by a file name that looks like a cron field: a failure says how to avoid that.
quote_hint([_]) ->
    <<>>;
quote_hint(_Parts) ->
    <<" (the shell split the expression into several arguments: put it in single quotes, "
      "e.g. emqx ctl guard backup_cron '0 12 * * 0')">>.

show_timezone() ->
    #{backup_timezone := Zone} = emqx_guard_settings:get(),
    case emqx_guard_cron:zone_name(Zone) of
        {ok, Zone} -> line(text("backup_timezone = \"~ts\"", [Zone]));
        {ok, Iana} -> line(text("backup_timezone = \"~ts\" (~ts)", [Zone, Iana]));
        {error, _} -> line(text("backup_timezone = \"~ts\"", [Zone]))
    end,
    print_fires().

show_catchup() ->
    #{backup_catchup := Seconds} = emqx_guard_settings:get(),
    Text = emqx_guard_render:duration_s(Seconds),
    case Seconds of
        0 -> line(text("backup_catchup = \"~ts\" (off: missed backups are not run at start)", [Text]));
        _ -> line(text("backup_catchup = \"~ts\"", [Text]))
    end.

show_io_limit() ->
    case maps:get(backup_io_limit, emqx_guard_settings:get()) of
        off -> line("backup_io_limit = \"off\" (verification reads at full speed, at the lowest CPU priority)");
        Rate -> line(text("backup_io_limit = \"~ts\"", [emqx_guard_render:rate(Rate)]))
    end.

show_plugins_max_size() ->
    Size = maps:get(backup_plugins_max_size, emqx_guard_settings:get()),
    line(text("backup_plugins_max_size = \"~ts\" (larger plugin packages: recorded by name and hash only)",
              [emqx_guard_render:size(Size)])).

%% @doc Stores the change (validated, saved, the scheduler re-armed) and pushes it to the other
%% running nodes (emqx_guard_settings_sync), then shows the new value (Show) and any node that
%% did not take it; a refused change is one `Error:' line.
-spec set(map(), fun(() -> term())) -> ok.
set(Changes, Show) ->
    set(Changes, Show, <<>>).

set(Changes, Show, ErrorHint) ->
    case emqx_guard_settings_sync:update(Changes) of
        {ok, _New, Unreached} ->
            Show(),
            lists:foreach(
                fun({Node, Why}) -> line(text("Warning: not applied on ~ts: ~ts", [Node, Why])) end,
                Unreached
            );
        {error, Why} ->
            error_line([emqx_guard_outcome:format_error(Why), ErrorHint])
    end.

print_preview() ->
    case emqx_guard_scheduler:preview(?PREVIEW_FIRES) of
        {ok, #{zone_name := ZoneName, description := Description, fires := Fires}} ->
            #{backup_timezone := Zone} = emqx_guard_settings:get(),
            line(text("zone: ~ts", [zone_text(Zone, ZoneName)])),
            line(text("meaning: ~ts", [Description])),
            print_fire_list(Fires);
        {error, Why} ->
            error_reason(Why)
    end.

print_fires() ->
    case emqx_guard_scheduler:preview(?PREVIEW_FIRES) of
        {ok, #{fires := Fires}} -> print_fire_list(Fires);
        {error, Why} -> error_reason(Why)
    end.

print_fire_list(Fires) ->
    line("next fires:"),
    lists:foreach(fun({Ms, Offset}) -> line(["  ", emqx_guard_render:instant(Ms, Offset)]) end, Fires).

zone_text(Zone, Zone) -> Zone;
zone_text(Zone, ZoneName) -> text("~ts (~ts)", [Zone, ZoneName]).

%% @doc True when the arguments after `backup_cron' look like the shell split
%% and glob-expanded an unquoted expression: more than 5 parts, or a part that
%% is a file name (contains `.', a `/' outside a cron step, or names an
%% existing file while not being a plain cron field).
-spec looks_glob_expanded([binary()]) -> boolean().
looks_glob_expanded(Parts) when length(Parts) > 5 ->
    true;
looks_glob_expanded(Parts) ->
    Tokens = lists:append([string:lexemes(P, " \t") || P <- Parts]),
    lists:any(fun file_like/1, Tokens).

file_like(Token) ->
    binary:match(Token, <<".">>) =/= nomatch orelse
        (binary:match(Token, <<"/">>) =/= nomatch andalso not cron_field(Token)) orelse
        (not numeric_field(Token) andalso filelib:is_file(Token)).

%% A cron field: comma-separated items, each `*' or a value or range (names
%% allowed), with an optional numeric step.
cron_field(Token) ->
    re:run(Token, <<"^(\\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$">>,
        [{capture, none}]) =:= match.

numeric_field(Token) ->
    re:run(Token, <<"^[0-9*,/-]+$">>, [{capture, none}]) =:= match.

%%--------------------------------------------------------------------
%% Backups
%%--------------------------------------------------------------------

%% The run goes in the scheduler's worker; its steps are printed here as they come
%% (`emqx_guard_steps_cli:follow/2'), then its result.
backup_now() ->
    Ref = make_ref(),
    %% the scheduler that runs it: if it goes away, the command stops waiting (when it stops
    %% cleanly it sends the run's end first)
    MRef =
        case whereis(emqx_guard_scheduler) of
            undefined -> exit({noproc, {emqx_guard_scheduler, run_now, []}});
            Scheduler -> monitor(process, Scheduler)
        end,
    case emqx_guard_scheduler:run_now({self(), Ref}) of
        {started, _At} ->
            case emqx_guard_steps_cli:follow(Ref, MRef) of
                {finished, Result} -> backup_result(Result);
                {stopped, _Why} -> line("Error: the emqx_guard scheduler stopped while the backup ran")
            end;
        {refused, Why} ->
            demonitor(MRef, [flush]),
            error_reason(Why)
    end.

backup_result(Result) ->
    case Result of
        {ok, Run} ->
            line(text("Backup done in ~ts", [emqx_guard_render:duration_ms(maps:get(duration_ms, Run))])),
            print_run_details(Run),
            %% the upload follows in its own queue, after the run
            case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
                {ok, Config} ->
                    line(text("  off-site: queued for upload to ~ts (guard backup_status shows it)", [emqx_guard_offsite:where(Config)]));
                off ->
                    ok
            end;
        {failed, Run} ->
            line(text("Error: backup failed after ~ts: ~ts", [
                emqx_guard_render:duration_ms(maps:get(duration_ms, Run)), maps:get(error, Run, <<"unknown error">>)
            ])),
            line("Earlier backups were kept.");
        {refused, Why} ->
            error_reason(Why)
    end.

%% The lines of a run's outcome that it has: file, size, sha256, pruned count, error, warnings.
print_run_details(Run) ->
    Fields = [
        {path, fun(P) -> [text("  file: ~ts", [P])] end},
        {size, fun(S) -> [text("  size: ~ts", [emqx_guard_render:size(S)])] end},
        {sha256, fun(H) -> [text("  sha256: ~ts", [H])] end},
        {pruned, fun(Names) -> [text("  pruned: ~B old backup(s)", [length(Names)])] end},
        {error, fun(E) -> [text("  error: ~ts", [E])] end},
        {warnings, fun(Ws) -> [text("  warning: ~ts", [W]) || W <- Ws] end}
    ],
    lists:foreach(
        fun({Key, Lines}) ->
            case maps:find(Key, Run) of
                {ok, V} -> lists:foreach(fun line/1, Lines(V));
                error -> ok
            end
        end,
        Fields
    ).

%% @doc Prints `Error: Why' as one line of the command's output.
-spec error_line(unicode:chardata()) -> ok.
error_line(Why) ->
    line(["Error: ", Why]).

%% @doc Prints `Error: ' and the line of the reason Why (`emqx_guard_outcome:format_error/1').
-spec error_reason(term()) -> ok.
error_reason(Why) ->
    error_line(emqx_guard_outcome:format_error(Why)).

%% @doc A command's arguments refused: `{error, {bad_argument, Line}}', Line saying what was
%% expected (a secret in the arguments already hidden by the caller).
-spec bad_argument(unicode:chardata()) -> {error, {bad_argument, binary()}}.
bad_argument(Line) ->
    {error, {bad_argument, unicode:characters_to_binary(Line)}}.

%% @doc Prints one line of the command's output (the data never becomes part of a format).
-spec line(unicode:chardata()) -> ok.
line(IoData) ->
    emqx_guard_emqx:print("~ts~n", [iolist_to_binary(IoData)]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).

to_bin(B) when is_binary(B) -> B;
to_bin(L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> <<>>
    end;
to_bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
to_bin(_) -> <<>>.
