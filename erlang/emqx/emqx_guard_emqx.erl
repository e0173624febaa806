%% @doc The ONE module of emqx_guard that calls into EMQX (see EMQX_CONTRACT.md, shared).
%%
%% Every function here works on EMQX 5.1 to 6.x and never raises into the caller:
%% <ul>
%% <li>A function that is missing in some EMQX version is looked up with `code:ensure_loaded/1'
%%     + `erlang:function_exported/3' before it is called, never by version number.</li>
%% <li>Every call is wrapped: an exception (e.g. an EMQX process that is not running) is logged and
%%     turned into the documented fallback.</li>
%% </ul>
%% What each function does without EMQX (or without the EMQX function it needs) is stated in its
%% doc. The export runs in a separate, linked and monitored process so that a hang can be cut off
%% (`emqx_guard_export_watch', which itself calls nothing of EMQX).
-module(emqx_guard_emqx).

-include_lib("kernel/include/logger.hrl").

-export([
    register_command/2,
    unregister_command/0,
    print/2,
    usage/1,
    data_dir/0,
    backup_dir/0,
    export_supported/0,
    export_out_dir_supported/0,
    export/2,
    activate_alarm/2,
    activate_alarm/3,
    deactivate_alarm/1,
    deactivate_alarm/2,
    alarm_name/0,
    node_role/0,
    running_nodes/0,
    running_core_nodes/0
]).

-define(CMD, guard).
-define(ALARM, emqx_guard_backup_failed).
%% The plugin's alarms: a failed backup, a failed off-site copy.
-define(IS_ALARM(Name), (Name =:= ?ALARM orelse Name =:= emqx_guard_offsite_failed)).

%% Why an export failed (`emqx_guard_export_watch' says what each means).
-type export_error() :: {export_unavailable, mfa()} | emqx_guard_export_watch:error().

-export_type([export_error/0]).

%%--------------------------------------------------------------------
%% emqx_ctl
%%--------------------------------------------------------------------

%% @doc Registers `Mod:Fun/1' as the `emqx ctl guard' command. Registering again overwrites.
%% The registration lives in EMQX's command table (it outlives the caller): call
%% `unregister_command/0' on stop. Without emqx_ctl it only logs.
-spec register_command(module(), atom()) -> ok.
register_command(Mod, Fun) when is_atom(Mod), is_atom(Fun) ->
    case exported(emqx_ctl, register_command, 3) of
        true ->
            guarded(register_command, fun() -> emqx_ctl:register_command(?CMD, {Mod, Fun}, []) end);
        false ->
            ?LOG_WARNING(#{msg => emqx_guard_ctl_unavailable, action => register_command}),
            ok
    end.

%% @doc Removes the `guard' command (EMQX does it asynchronously).
-spec unregister_command() -> ok.
unregister_command() ->
    case exported(emqx_ctl, unregister_command, 1) of
        true -> guarded(unregister_command, fun() -> emqx_ctl:unregister_command(?CMD) end);
        false -> ok
    end.

%% @doc Prints to the caller's group leader (the `emqx ctl' terminal) through `emqx_ctl:print/2',
%% or `io:format/2' where it is missing. Fmt must be a constant format: pass every piece of data
%% through `~ts' / `~tp' in Args, never as part of Fmt. A bad format is logged, not raised.
-spec print(io:format(), [term()]) -> ok.
print(Fmt, Args) ->
    Print =
        case exported(emqx_ctl, print, 2) of
            true -> fun() -> emqx_ctl:print(Fmt, Args) end;
            false -> fun() -> io:format(Fmt, Args) end
        end,
    guarded(print, Print).

%% @doc Prints a usage listing the way EMQX does (`emqx_ctl:usage/1': the command column padded,
%% then `# Description'). emqx_ctl hands the formatted text to io:format/1 as a format, so every
%% `~' is escaped here first. Without emqx_ctl the same layout is printed with io:format.
-spec usage([{unicode:chardata(), unicode:chardata()}]) -> ok.
usage(Lines) ->
    Plain = [{to_list(Cmd), to_list(Desc)} || {Cmd, Desc} <- Lines],
    case exported(emqx_ctl, usage, 1) of
        true ->
            Escaped = [{escape_tilde(C), escape_tilde(D)} || {C, D} <- Plain],
            guarded(usage, fun() -> emqx_ctl:usage(Escaped) end);
        false ->
            Width = lists:max([0 | [string:length(C) || {C, _} <- Plain]]) + 1,
            guarded(usage, fun() ->
                lists:foreach(
                    fun({C, D}) -> io:format("~ts# ~ts~n", [string:pad(C, Width), D]) end, Plain
                )
            end)
    end.

%%--------------------------------------------------------------------
%% Directories
%%--------------------------------------------------------------------

%% @doc EMQX's data directory (`emqx:data_dir()'); without it the `emqx' application's
%% `data_dir' environment value, else `"data"'. Always absolute: a relative one (a tarball
%% install has `"data"') is resolved against EMQX's working directory, so every path the plugin
%% shows or sends is one an operator can use anywhere.
-spec data_dir() -> file:filename().
data_dir() ->
    FromEmqx =
        case exported(emqx, data_dir, 0) andalso checked(data_dir, fun() -> emqx:data_dir() end, fun(_) -> true end) of
            {ok, EmqxDir} -> to_list(EmqxDir);
            _ -> undefined
        end,
    Dir =
        case FromEmqx of
            [_ | _] ->
                FromEmqx;
            _ ->
                case application:get_env(emqx, data_dir) of
                    {ok, EnvDir} when is_list(EnvDir); is_binary(EnvDir) -> to_list(EnvDir);
                    _ -> "data"
                end
        end,
    filename:absname(Dir).

%% @doc Where EMQX writes its exports: `<data_dir>/backup'.
-spec backup_dir() -> file:filename().
backup_dir() ->
    filename:join(data_dir(), "backup").

%%--------------------------------------------------------------------
%% Export
%%--------------------------------------------------------------------

%% @doc True when this EMQX has the data export (`emqx_mgmt_data_backup:export/0', EMQX 5.1+).
-spec export_supported() -> boolean().
export_supported() ->
    exported(emqx_mgmt_data_backup, export, 0).

%% @doc True when this EMQX's export writes where the option `out_dir' says (EMQX 5.8.5+;
%% older ones ignore the option and write into `backup_dir/0'). Told by
%% `emqx_mgmt_data_backup:parse_export_request/1', which came in the same release.
-spec export_out_dir_supported() -> boolean().
export_out_dir_supported() ->
    exported(emqx_mgmt_data_backup, parse_export_request, 1).

%% @doc Runs one EMQX data export (`emqx_mgmt_data_backup:export/1') in a process of its own,
%% linked to the caller and cut off after TimeoutMs (`emqx_guard_export_watch:run/2' says how,
%% and what comes back: `{ok, #{filename, size, ...}}' with an absolute path, or
%% `{error, export_error()}' whose Detail names the tarball EMQX had started to write). Opts:
%% `out_dir', a directory that exists, where an EMQX that supports it
%% (`export_out_dir_supported/0') writes the export instead of `backup_dir/0'; it is not passed
%% to one that does not. `{error, {export_unavailable, {emqx_mgmt_data_backup, export, 0}}}'
%% when this EMQX has no export.
-spec export(timeout(), #{out_dir => file:filename_all()}) ->
    {ok, #{filename := binary(), size := non_neg_integer(), atom() => term()}}
    | {error, export_error()}.
export(TimeoutMs, Opts) ->
    case export_supported() of
        false ->
            {error, {export_unavailable, {emqx_mgmt_data_backup, export, 0}}};
        true ->
            %% `out_dir' as a string: EMQX appends ".tar.gz" to it with `++'
            OutDir =
                case {maps:find(out_dir, Opts), export_out_dir_supported()} of
                    {{ok, Dir}, true} -> #{out_dir => to_list(Dir)};
                    _ -> #{}
                end,
            emqx_guard_export_watch:run(fun(PrintFun) -> call_export(OutDir#{print_fun => PrintFun}) end, TimeoutMs)
    end.

%% Runs inside the export process: never raises.
call_export(Opts) ->
    try emqx_mgmt_data_backup:export(Opts) of
        Value -> {returned, Value}
    catch
        Class:Reason:Stack ->
            ?LOG_WARNING(#{
                msg => emqx_guard_export_crashed,
                exception => Class,
                reason => Reason,
                stacktrace => Stack
            }),
            {raised, Class, Reason}
    end.

%%--------------------------------------------------------------------
%% Alarm
%%--------------------------------------------------------------------

%% @doc The name of our EMQX alarm.
-spec alarm_name() -> atom().
alarm_name() ->
    ?ALARM.

%% @doc Raises the alarm `emqx_guard_backup_failed' with Details and Message. EMQX does not update
%% an alarm that is already active, so an active alarm with other details or message is
%% deactivated first and raised again; one with the same details and message is left as it is.
%% Without emqx_alarm (or when it fails) this only logs.
-spec activate_alarm(map(), binary()) -> ok.
activate_alarm(Details, Message) ->
    activate_alarm(?ALARM, Details, Message).

%% @doc `activate_alarm/2' for the alarm Name: `emqx_guard_backup_failed' or
%% `emqx_guard_offsite_failed'.
-spec activate_alarm(atom(), map(), binary()) -> ok.
activate_alarm(Name, Details, Message) when ?IS_ALARM(Name), is_map(Details) ->
    Msg = to_binary(Message),
    guarded(activate_alarm, fun() ->
        case alarm_activate(Name, Details, Msg) of
            {error, already_existed} ->
                case active_alarm(Name) of
                    {ok, #{details := Details, message := Msg}} ->
                        ok;
                    _ ->
                        _ = alarm_deactivate(Name, <<"replaced by a newer failure">>),
                        alarm_activate(Name, Details, Msg)
                end;
            Other ->
                Other
        end
    end).

%% @doc Clears the alarm `emqx_guard_backup_failed' with Message (kept in EMQX's alarm history).
%% Clearing an alarm that is not active is fine.
-spec deactivate_alarm(binary()) -> ok.
deactivate_alarm(Message) ->
    deactivate_alarm(?ALARM, Message).

%% @doc `deactivate_alarm/1' for the alarm Name (as `activate_alarm/3').
-spec deactivate_alarm(atom(), binary()) -> ok.
deactivate_alarm(Name, Message) when ?IS_ALARM(Name) ->
    Msg = to_binary(Message),
    guarded(deactivate_alarm, fun() ->
        _ = alarm_deactivate(Name, Msg),
        ok
    end).

alarm_activate(Name, Details, Msg) ->
    case exported(emqx_alarm, activate, 3) of
        true ->
            emqx_alarm:activate(Name, Details, Msg);
        false ->
            case exported(emqx_alarm, activate, 2) of
                true -> emqx_alarm:activate(Name, Details);
                false -> {error, alarm_unavailable}
            end
    end.

alarm_deactivate(Name, Msg) ->
    case exported(emqx_alarm, deactivate, 3) of
        true ->
            emqx_alarm:deactivate(Name, #{}, Msg);
        false ->
            case exported(emqx_alarm, deactivate, 1) of
                true -> emqx_alarm:deactivate(Name);
                false -> {error, alarm_unavailable}
            end
    end.

active_alarm(Name) ->
    case exported(emqx_alarm, get_alarms, 1) of
        true ->
            case [A || #{name := N} = A <- emqx_alarm:get_alarms(activated), N =:= Name] of
                [Alarm | _] -> {ok, Alarm};
                [] -> not_found
            end;
        false ->
            unknown
    end.

%%--------------------------------------------------------------------
%% Cluster
%%--------------------------------------------------------------------

%% @doc This node's role, `mria_rlog:role()'; `core' where mria_rlog is missing or fails.
-spec node_role() -> core | replicant.
node_role() ->
    case exported(mria_rlog, role, 0) of
        true ->
            try mria_rlog:role() of
                replicant -> replicant;
                _ -> core
            catch
                _:_ -> core
            end;
        false ->
            core
    end.

%% @doc The running nodes of the cluster, sorted, this node included: `emqx:running_nodes()'.
%% Without it (or when it fails) only this node.
-spec running_nodes() -> [node()].
running_nodes() ->
    Running =
        case exported(emqx, running_nodes, 0) of
            true -> guarded_nodes(running_nodes, fun() -> emqx:running_nodes() end);
            false -> error
        end,
    case Running of
        error -> [node()];
        _ -> lists:usort([node() | Running])
    end.

%% @doc The running CORE nodes, sorted: `emqx:running_nodes()' that are also in
%% `emqx:cluster_nodes(cores)'. Where `emqx:cluster_nodes/1' is missing (or fails) every running
%% node counts as a core, except this node when `mria_rlog:role()' says it is a replicant.
-spec running_core_nodes() -> [node()].
running_core_nodes() ->
    Running = running_nodes(),
    Cores =
        case exported(emqx, cluster_nodes, 1) of
            true -> guarded_nodes(cluster_nodes, fun() -> emqx:cluster_nodes(cores) end);
            false -> error
        end,
    case Cores of
        error ->
            case node_role() of
                core -> Running;
                replicant -> Running -- [node()]
            end;
        _ ->
            [N || N <- Running, lists:member(N, Cores)]
    end.

guarded_nodes(Call, F) ->
    case checked(Call, F, fun is_list/1) of
        {ok, Nodes} -> [N || N <- Nodes, is_atom(N)];
        error -> error
    end.

%%--------------------------------------------------------------------
%% internal
%%--------------------------------------------------------------------

exported(Mod, Fun, Arity) ->
    case code:ensure_loaded(Mod) of
        {module, Mod} -> erlang:function_exported(Mod, Fun, Arity);
        {error, _} -> false
    end.

%% Runs F; any exception or non-ok result is logged and becomes ok.
guarded(Call, F) ->
    _ = checked(Call, F, fun(Result) -> Result =:= ok end),
    ok.

%% Runs F: `{ok, Value}' when Accept(Value), else (an exception included) logged and `error'.
checked(Call, F, Accept) ->
    try F() of
        Value ->
            case Accept(Value) of
                true ->
                    {ok, Value};
                false ->
                    ?LOG_WARNING(#{msg => emqx_guard_emqx_call_failed, call => Call, result => Value}),
                    error
            end
    catch
        Class:Reason ->
            ?LOG_WARNING(#{msg => emqx_guard_emqx_call_failed, call => Call, exception => Class, reason => Reason}),
            error
    end.

escape_tilde(Str) ->
    lists:flatmap(
        fun
            ($~) -> "~~";
            (C) -> [C]
        end,
        Str
    ).

to_list(L) when is_list(L) ->
    case unicode:characters_to_list(L) of
        S when is_list(S) -> S;
        _ -> lists:flatten(io_lib:format("~tp", [L]))
    end;
to_list(B) when is_binary(B) ->
    to_list([B]);
to_list(A) when is_atom(A) ->
    atom_to_list(A);
to_list(Other) ->
    lists:flatten(io_lib:format("~tp", [Other])).

to_binary(B) when is_binary(B) ->
    B;
to_binary(Other) ->
    unicode:characters_to_binary(to_list(Other)).
