%% @doc A restore with a safety net (issue 23): `restore/2' is the one implementation behind
%% `guard backup_restore' (`emqx_guard_restore_cli') and the dashboard.
%% <ol>
%% <li><b>preflight</b> (`emqx_guard_restore_preflight'): core node, an export name, the file here
%%     (or fetched from off-site with `remote'), verified, its contents read, EMQX's version and
%%     edition rules; a refusal is `{error, {restore_refused, Why}}' and nothing changed (no
%%     safety backup is taken, no alarm, no notification);</li>
%% <li>`dry_run' stops here: the report says what would be imported;</li>
%% <li><b>safety</b>: a normal backup of the present state through the scheduler's run (trigger
%%     `pre_restore': export, verify, prune, copies, off-site as every run), kept by retention
%%     until a later good backup replaced it (`emqx_guard_restore_state:held/0'); if it fails,
%%     nothing is imported;</li>
%% <li><b>import</b>: EMQX's own import (`emqx_guard_emqx:import/2'), its lines reported as
%%     EMQX prints them; per-key or per-table errors after the rest was applied make the restore
%%     failed; a failure as a whole is told in EMQX's own words for it (`words/1');</li>
%% <li><b>api_keys</b>: the keys of `api_key.bootstrap_file' written again
%%     (`emqx_guard_emqx:reload_bootstrap_keys/0'), so a backup's `emqx_app' records never
%%     lock out the EMQX Operator (emqx/emqx-operator#1136);</li>
%% <li><b>plugins</b>: what the backup's plugins companion carries is brought back
%%     (`emqx_guard_restore_plugins': missing plugins installed, their configs applied, this
%%     plugin's own settings applied), each line saying what was done;</li>
%% <li><b>record</b>: the result kept for `guard backup_status' (`emqx_guard_restore_state'); a
%%     failure raises the backup alarm; `restore_done' or `restore_failed' is notified and
%%     published on `$SYS'.</li>
%% </ol>
%% Runs in the caller's process (so the CLI prints from its own process); one restore at a time
%% in the cluster (a `global' lock over the running core nodes). Never raises.
-module(emqx_guard_restore).

-include_lib("kernel/include/logger.hrl").

-export([restore/2, running/0, jsonable/1]).

-export_type([opts/0]).

-type opts() :: #{
    remote => boolean(),
    dry_run => boolean(),
    exact => boolean(),
    report => fun((term()) -> ok),
    %% the age identity file that decrypts an off-site backup (`remote')
    identity => file:filename_all()
}.

-define(LOCK, emqx_guard_restore).
-define(RUNNING, {?MODULE, running}).

%% @doc Restores the backup Name (see the module doc): `{ok, Report}' when it was imported
%% without error (or, with `dry_run', would be tried), `{error, {restore_refused, Why}}' when
%% nothing changed, `{error, {restore_failed, #{why := Why, report := Report}}}' when a step after
%% the safety backup failed (Report says what happened up to there). Report is JSON-able (`jsonable/1'):
%% `name', `node', `dry_run', `preflight' (the facts), `safety' (the safety backup), `import'
%% (`lines', `config_errors', `db_errors'), `api_keys', `plugins', `result'.
-spec restore(binary(), opts()) -> {ok, map()} | {error, {atom(), term()}}.
restore(Name, Opts) when is_binary(Name), is_map(Opts) ->
    Nodes = lists:usort([node() | emqx_guard_cores:running()]),
    LockId = {?LOCK, self()},
    case global:set_lock(LockId, Nodes, 0) of
        false ->
            Running = persistent_term:get(?RUNNING, #{name => <<"?">>, started_at => 0}),
            {error, {restore_refused, {already_restoring, Running}}};
        true ->
            persistent_term:put(?RUNNING, #{name => Name, started_at => erlang:system_time(millisecond)}),
            try
                guarded(Name, Opts)
            after
                _ = persistent_term:erase(?RUNNING),
                global:del_lock(LockId, Nodes)
            end
    end;
restore(Name, _Opts) ->
    {error, {restore_refused, {not_an_export, Name}}}.

%% @doc The backup a restore on this node is restoring now (`[]' when none): retention keeps it
%% (`emqx_guard_restore_state:held/0'), so the safety backup's run never prunes it.
-spec running() -> [binary()].
running() ->
    case persistent_term:get(?RUNNING, undefined) of
        #{name := Name} -> [Name];
        undefined -> []
    end.

guarded(Name, Opts) ->
    try
        run(Name, Opts)
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{msg => emqx_guard_restore_crashed, exception => Class,
                         reason => emqx_guard_redact:term(Reason), stacktrace => Stack}),
            {error, {restore_failed, {crashed, #{class => Class, reason => Reason}}}}
    end.

run(Name, Opts) ->
    Report = maps:get(report, Opts, fun emqx_guard_steps:noop/1),
    StartedAt = erlang:system_time(millisecond),
    T0 = erlang:monotonic_time(millisecond),
    case emqx_guard_restore_preflight:run(Name, Opts) of
        {error, Why} ->
            ?LOG_INFO(#{msg => emqx_guard_restore_refused, name => Name,
                        reason => emqx_guard_outcome:format_error({restore_refused, Why})}),
            {error, {restore_refused, Why}};
        {ok, Facts0} ->
            Facts = Facts0#{plugins => emqx_guard_restore_plugins:facts(maps:get(path, Facts0))},
            Base = #{name => Name, node => node(), started_at => StartedAt, dry_run => maps:get(dry_run, Opts, false),
                     preflight => Facts},
            case maps:get(dry_run, Opts, false) of
                true -> {ok, jsonable(Base#{result => dry_run})};
                false -> apply_backup(Base, Facts, T0, Report)
            end
    end.

%% After the preflight: the safety backup, the import, the API keys, then the record.
apply_backup(Base, Facts, T0, Report) ->
    Done =
        case safety(Report) of
            {ok, Safety = #{file := SafetyFile}} ->
                _ = emqx_guard_restore_state:hold(SafetyFile, maps:get(started_at, Base)),
                Base1 = Base#{safety => Safety},
                {Imported, Base2} = import(Base1, Facts, Report),
                Base3 = Base2#{api_keys => api_keys(Report)},
                case Imported of
                    ok -> plugins(Base3, Facts, Report);
                    {error, Why} -> {error, import, Why, Base3}
                end;
            {error, Why} ->
                {error, safety, Why, Base};
            {refused, Why} ->
                {refused, Why}
        end,
    finish(Done, erlang:monotonic_time(millisecond) - T0).

%% The safety backup: a run of the scheduler (trigger `pre_restore') whose steps the caller hears.
safety(Report) ->
    Report({started, safety, #{}}),
    Ref = make_ref(),
    case whereis(emqx_guard_scheduler) of
        undefined ->
            {error, {safety_backup, <<"the emqx_guard scheduler is not running">>}};
        Scheduler ->
            MRef = monitor(process, Scheduler),
            case emqx_guard_scheduler:run_now({self(), Ref}, pre_restore) of
                {started, _At} ->
                    case follow(Ref, MRef, Report) of
                        {ok, #{file := File} = Outcome} ->
                            Safety = #{file => File, size => maps:get(size, Outcome, 0), path => maps:get(path, Outcome, <<>>)},
                            Report({done, safety, Safety}),
                            {ok, Safety};
                        {failed, Line} ->
                            {error, {safety_backup, Line}}
                    end;
                {refused, Why} ->
                    %% (a backup is running, or this EMQX cannot export): nothing was done yet
                    demonitor(MRef, [flush]),
                    {refused, {safety_backup_refused, emqx_guard_outcome:format_error(Why)}}
            end
    end.

follow(Ref, MRef, Report) ->
    receive
        {emqx_guard_step, Ref, {finished, {ok, Outcome}}} ->
            demonitor(MRef, [flush]),
            {ok, Outcome};
        {emqx_guard_step, Ref, {finished, {failed, #{error := Error}}}} ->
            demonitor(MRef, [flush]),
            {failed, Error};
        {emqx_guard_step, Ref, {finished, {refused, Why}}} ->
            demonitor(MRef, [flush]),
            {failed, emqx_guard_outcome:format_error(Why)};
        {emqx_guard_step, Ref, Event} ->
            Report(Event),
            follow(Ref, MRef, Report);
        {'DOWN', MRef, process, _, Why} ->
            {failed, emqx_guard_outcome:format_error({worker_died, Why})}
    end.

%% EMQX's import, its lines reported (and kept for the report) as EMQX prints them.
import(Base = #{name := Name}, _Facts, Report) ->
    Report({started, import, #{name => Name}}),
    Key = {?MODULE, lines, make_ref()},
    Print = fun(Fmt, Args) ->
        Line = string:trim(unicode:characters_to_binary(io_lib:format(Fmt, Args)), trailing),
        put(Key, [Line | get_list(Key)]),
        Report({line, import, Line}),
        ok
    end,
    Result = emqx_guard_emqx:import(Name, Print),
    Lines = lists:reverse(get_list(Key)),
    erase(Key),
    case Result of
        {ok, #{config_errors := C, db_errors := D}} when map_size(C) =:= 0, map_size(D) =:= 0 ->
            Report({line, import, <<"Data has been imported successfully.">>}),
            {ok, Base#{import => #{lines => Lines ++ [<<"Data has been imported successfully.">>], config_errors => [], db_errors => []}}};
        {ok, #{config_errors := C, db_errors := D}} ->
            Said = <<"Data has been imported, but some errors occurred, see the log above.">>,
            Report({line, import, Said}),
            Errors = #{config_errors => pairs(C), db_errors => pairs(D)},
            {{error, {import_partial, Errors}}, Base#{import => Errors#{lines => Lines ++ [Said]}}};
        {error, {import_error, Reason}} ->
            Words = words(Reason),
            Said = <<"[error] Data import failed, reason: ", Words/binary, ".">>,
            Report({line, import, Said}),
            Why = #{reason => Reason, words => Words},
            {{error, {import, Why}}, Base#{import => #{lines => Lines ++ [Said], config_errors => [], db_errors => []}}};
        {error, Why} ->
            {{error, {import, Why}}, Base#{import => #{lines => Lines, config_errors => [], db_errors => []}}}
    end.

%% EMQX's own words for an import's reason (an exception's reason for `{Class, Reason}'), or the
%% term printed short.
words({Class, Reason}) when Class =:= error; Class =:= exit; Class =:= throw ->
    words(Reason);
words(Reason) ->
    Text =
        case emqx_guard_emqx:import_error_words(Reason) of
            {ok, Words} -> Words;
            error -> Reason
        end,
    case is_binary(Text) orelse io_lib:printable_unicode_list(Text) of
        true -> string:trim(unicode:characters_to_binary(Text));
        false -> unicode:characters_to_binary(io_lib:format("~0tP", [Text, 12]))
    end.

get_list(Key) ->
    case get(Key) of
        undefined -> [];
        L -> L
    end.

%% EMQX's error maps as `[{Key, Why}]', the key as text (a config path is a list of binaries).
pairs(Errors) ->
    [{key_text(K), V} || {K, V} <- lists:sort(maps:to_list(Errors))].

key_text(K) when is_atom(K) -> atom_to_binary(K);
key_text(K) when is_binary(K) -> K;
key_text(Path) when is_list(Path) ->
    try iolist_to_binary(lists:join(<<".">>, [key_text(P) || P <- Path])) catch _:_ -> emqx_guard_call:binary(Path) end;
key_text(K) -> emqx_guard_call:binary(K).

%% What the plugins companion brings back (`emqx_guard_restore_plugins'), after a good import.
plugins(Base, #{path := Path}, Report) ->
    Report({started, plugins, #{}}),
    case emqx_guard_restore_plugins:apply(Path, Report) of
        {ok, Lines} -> {ok, Base#{plugins => Lines}};
        {error, {plugins_failed, Lines} = Why} -> {error, plugins, Why, Base#{plugins => Lines}}
    end.

%% The bootstrap file's API keys, written again after any import.
api_keys(Report) ->
    case emqx_guard_emqx:reload_bootstrap_keys() of
        ok ->
            Report({done, api_keys, #{}}),
            <<"the keys of api_key.bootstrap_file were written again (none are locked out)">>;
        unavailable ->
            <<"this EMQX has no bootstrap file reload (emqx_mgmt_auth:try_init_bootstrap_file/0)">>;
        {error, Why} ->
            Line = emqx_guard_outcome:format_error({restore_failed, {bootstrap_keys, Why}}),
            Report({warned, api_keys, #{warning => Line}}),
            Line
    end.

%%--------------------------------------------------------------------------------------------
%% The end: recorded, alarmed, notified
%%--------------------------------------------------------------------------------------------

finish({refused, Why}, _Ms) ->
    {error, {restore_refused, Why}};
finish({ok, Report}, Ms) ->
    Final = Report#{result => ok, duration_ms => Ms},
    told(Final),
    {ok, jsonable(Final)};
finish({error, Step, Why, Report}, Ms) ->
    Line = emqx_guard_outcome:format_error({restore_failed, Why}),
    Final = Report#{result => failed, failed_step => Step, error => Line, duration_ms => Ms},
    told(Final),
    {error, {restore_failed, #{why => Why, report => jsonable(Final)}}}.

told(Final = #{name := Name, result := Result, started_at := At, duration_ms := Ms}) ->
    Safety = maps:get(file, maps:get(safety, Final, #{}), undefined),
    Facts = maps:filter(fun(_, V) -> V =/= undefined end, #{
        result => Result, file => Name, node => node(), started_at => At, duration_ms => Ms, safety => Safety,
        step => maps:get(failed_step, Final, undefined), error => maps:get(error, Final, undefined)
    }),
    case emqx_guard_restore_state:finished(Facts) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_restore_not_recorded, reason => emqx_guard_outcome:format_error(Why)})
    end,
    case Result of
        failed ->
            ?LOG_ERROR(#{msg => emqx_guard_restore_failed, file => Name, step => maps:get(step, Facts), error => maps:get(error, Facts)}),
            emqx_guard_alarm:restore_failed(maps:get(error, Facts), maps:with([file, safety, step, started_at], Facts));
        ok ->
            ?LOG_INFO(#{msg => emqx_guard_restore_done, file => Name, safety => Safety, duration_ms => Ms})
    end,
    emqx_guard_notify:notify(emqx_guard_notify_facts:restore_event_of(Facts), Facts),
    emqx_guard_events:restored(Facts).

%% @doc Term as JSON can hold it: maps (binary keys), lists, binaries, numbers, `true',
%% `false', `null'; other atoms (a node, a result) become binaries, `{K, V}' pairs in a list a
%% map's entry, other tuples their printed text.
-spec jsonable(term()) -> term().
jsonable(M) when is_map(M) ->
    maps:from_list([{json_key(K), jsonable(V)} || {K, V} <- maps:to_list(M)]);
jsonable(L) when is_list(L) ->
    case lists:all(fun(E) -> is_tuple(E) andalso tuple_size(E) =:= 2 end, L) andalso L =/= [] of
        true -> [#{<<"key">> => jsonable(K), <<"error">> => error_text(V)} || {K, V} <- L];
        false -> [jsonable(E) || E <- L]
    end;
jsonable(B) when is_boolean(B); B =:= null; is_binary(B); is_number(B) -> B;
jsonable(undefined) -> null;
jsonable(A) when is_atom(A) -> atom_to_binary(A);
jsonable(T) -> emqx_guard_call:binary(io_lib:format("~0tP", [T, 12])).

json_key(K) when is_atom(K) -> atom_to_binary(K);
json_key(K) when is_binary(K) -> K;
json_key(K) -> emqx_guard_call:binary(K).

error_text(Why) ->
    emqx_guard_outcome:format_error(Why).
