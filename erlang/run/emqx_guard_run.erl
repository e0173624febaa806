%% @doc One backup run, top to bottom. `run/2' is the whole job:
%% <ol>
%% <li><b>elect</b>: a scheduled or catch-up fire is exported by one node of the cluster only
%%     (`emqx_guard_election:run/3' wraps the steps below; on other nodes the run is skipped);</li>
%% <li><b>export</b>: EMQX's own data export (`emqx_guard_emqx:export/2'), into a staging
%%     directory of the run's own where EMQX supports `out_dir', the finished file then moved
%%     into the backup directory under EMQX's name (`emqx_guard_export_files'); an error tuple,
%%     an exception and a hang past `export_timeout' are all failures, and what the failed
%%     export made is removed, never anything else (`emqx_guard_export_files:discard/3');
%%     before it, what exports interrupted earlier left is removed
%%     (`emqx_guard_leftovers:sweep/1');</li>
%% <li><b>protect</b>: the new file becomes mode 0600 at once (`emqx_guard_backups:make_private/1');
%%     backups hold password hashes and API keys;</li>
%% <li><b>verify</b>: the new file is read back in full (`emqx_guard_backups:check/3': a background
%%     job at the lowest OS priority, reading at most `io_limit', waited for at most
%%     `export_timeout' plus twice the time the limit needs; it is cancelled if this process
%%     dies) and the verdict recorded (`emqx_guard_verifications'); a file that fails is deleted,
%%     one the verifier could not read at all or in time is kept unverified;</li>
%% <li><b>plugins</b>: a verified backup gets its plugins companion beside it
%%     (`emqx_guard_companion:beside/2'); one that cannot be made is a warning;</li>
%% <li><b>prune</b>: only after a verified backup, retention applies `retention' (the policy,
%%     pins and zone of `emqx_guard_retention'; counting only backups that verify, the new one
%%     made when its export began) (`emqx_guard_backups:prune/6', a background job too, with a
%%     bound of its own sized from what it has to read); files it has records for and that did
%%     not change are not read again, and each verdict it reaches is recorded at once; a failed
%%     prune, or one out of time (it says how far it got and goes on at the next run), is a
%%     warning, the backup is good;</li>
%% <li><b>copy</b>: the backup is handed to the copy jobs (`emqx_guard_copies:enqueue/2'), which
%%     copy it to the other core nodes after the run;</li>
%% <li><b>offsite</b>: the backup is handed to the off-site copies
%%     (`emqx_guard_offsite_queue:enqueue/1'): with a remote destination set, that queue
%%     uploads it to S3-compatible storage after the run, with its own status, alarm and
%%     notifications. The run never waits on the network;</li>
%% <li><b>record</b>: the EMQX alarm is raised or cleared (`emqx_guard_alarm:update/1'), then the
%%     scheduler keeps the outcome (status, counts, the run state file) and answers whoever
%%     waits for the run (`guard backup_now'), which so sees alarm and status up to date;</li>
%% <li><b>notify</b>: the notifications go out (`emqx_guard_notify:run_finished/1', never
%%     blocking), and the outcome's `$SYS' event (`emqx_guard_events:backup_finished/1').</li>
%% </ol>
%% Each step from export to offsite is reported as it starts and ends, with what it did, and a
%% long one (export, verify, prune) with its progress at most once a second (the `report' dep,
%% `emqx_guard_steps'): `guard backup_now' prints them as they come.
%% Every step adds to one value, the outcome (`emqx_guard_outcome'), that every consumer reads
%% as it is. Errors stay tagged terms; `emqx_guard_outcome:format_error/1' makes their text.
%% The run never raises: a crash in a step is a failed outcome. Side effects come in through
%% the `Deps' map (defaults: the real ones), so that tests can replace them.
%%
%% Only one run may go at a time (EMQX's export has no lock): the scheduler makes sure of that.
-module(emqx_guard_run).

-include_lib("kernel/include/logger.hrl").

-export([run/2, finish/2, request/4, start/2, ended/3]).

-export_type([request/0, deps/0, running/0]).

-type request() :: #{
    trigger := emqx_guard_outcome:trigger(),
    instant => integer() | undefined,
    %% how many backups count as the newest (copies to other nodes)
    keep := pos_integer(),
    %% retention's rules (`emqx_guard_retention'; default: `last=<keep>')
    retention => emqx_guard_retention:rules(),
    export_timeout := timeout(),
    %% bytes per second the run's checks read at most (default: the `backup_io_limit' setting)
    io_limit => emqx_guard_backups:limit(),
    %% the most retention may take in this run (default: `emqx_guard_backups'' bound, an hour)
    retention_max_ms => pos_integer(),
    started_at => integer()
}.
%% A run going in its worker process.
-type running() :: #{
    pid := pid(),
    mref := reference(),
    started_at := integer(),
    trigger := emqx_guard_outcome:trigger(),
    instant := integer() | undefined
}.
-type deps() :: #{
    elect => fun((emqx_guard_outcome:trigger(), integer() | undefined, fun()) -> term()),
    export => fun((timeout(), map()) -> {ok, map()} | {error, emqx_guard_emqx:export_error()}),
    copy => fun((emqx_guard_outcome:outcome(), pos_integer()) -> ok),
    offsite => fun((emqx_guard_outcome:outcome()) -> ok),
    record => fun((emqx_guard_outcome:outcome()) -> ok),
    alarm => fun((emqx_guard_outcome:outcome()) -> ok),
    notify => fun((emqx_guard_outcome:outcome()) -> ok),
    events => fun((emqx_guard_outcome:outcome()) -> ok),
    report => emqx_guard_steps:report()
}.

%% @doc The request of a run started at StartedAt for Trigger (and the scheduled Instant it
%% stands for, or `undefined'), under Settings.
-spec request(emqx_guard_outcome:trigger(), integer() | undefined, integer(), emqx_guard_settings:settings()) -> request().
request(Trigger, Instant, StartedAt, Settings) ->
    #{
        trigger => Trigger,
        instant => Instant,
        started_at => StartedAt,
        keep => emqx_guard_retention:count(maps:get(backup_keep, Settings)),
        retention => emqx_guard_retention:local(Settings),
        export_timeout => maps:get(export_timeout, Settings) * 1000,
        io_limit => maps:get(backup_io_limit, Settings)
    }.

%% @doc Starts Request's run in a worker process the caller monitors, with the Deps given (the
%% caller's: `record', to which the worker hands the outcome before it ends, and `report', which
%% hears its steps).
-spec start(request(), #{record := fun((emqx_guard_outcome:outcome()) -> ok), report => emqx_guard_steps:report()}) ->
    running().
start(Request = #{trigger := Trigger, started_at := Started}, Deps) ->
    Instant = maps:get(instant, Request, undefined),
    {Pid, MRef} = spawn_monitor(fun() -> run(Request, Deps) end),
    ?LOG_INFO(#{msg => emqx_guard_backup_started, trigger => Trigger, instant => Instant}),
    #{pid => Pid, mref => MRef, started_at => Started, trigger => Trigger, instant => Instant}.

%% @doc A run whose worker ended before it recorded an outcome (it died, or the plugin stopped):
%% failed for Reason at Now, and finished as every run is (`finish/2').
-spec ended(running(), term(), integer()) -> emqx_guard_outcome:outcome().
ended(#{started_at := Started, trigger := Trigger, instant := Instant}, Reason, Now) ->
    Died = emqx_guard_outcome:fail(emqx_guard_outcome:new(Trigger, Instant, Started), Reason),
    finish(emqx_guard_outcome:finish(Died, max(Now - Started, 0)), #{}).

%% @doc Runs one backup (see the module doc) and returns its outcome, after it was recorded
%% and notified.
-spec run(request(), deps()) -> emqx_guard_outcome:outcome().
run(Request = #{trigger := Trigger}, Deps0) ->
    Deps = maps:merge(default_deps(), Deps0),
    StartedAt = maps:get(started_at, Request, erlang:system_time(millisecond)),
    T0 = erlang:monotonic_time(millisecond),
    New = emqx_guard_outcome:new(Trigger, maps:get(instant, Request, undefined), StartedAt),
    Outcome =
        try elect(New, Request, Deps) of
            O -> O
        catch
            Class:Reason:Stack ->
                ?LOG_ERROR(#{msg => emqx_guard_backup_crashed, exception => Class, reason => Reason, stacktrace => Stack}),
                emqx_guard_outcome:fail(New, {crashed, #{class => Class, reason => Reason}})
        end,
    finish(emqx_guard_outcome:finish(Outcome, erlang:monotonic_time(millisecond) - T0), Deps).

%% @doc The last steps of every run, also for a run whose process died before it got there:
%% log, alarm, `$SYS' event, record, notify. Returns the outcome.
-spec finish(emqx_guard_outcome:outcome(), deps()) -> emqx_guard_outcome:outcome().
finish(Outcome, Deps0) ->
    Deps = maps:merge(default_deps(), Deps0),
    log(Outcome),
    ok = step(alarm, Outcome, Deps),
    %% the event is decided (`sys_events' read) before `record' answers whoever waits for the
    %% run: a command that follows the run's answer never changes what the run publishes
    ok = step(events, Outcome, Deps),
    ok = step(record, Outcome, Deps),
    ok = step(notify, Outcome, Deps),
    Outcome.

default_deps() ->
    #{
        elect => fun emqx_guard_election:run/3,
        export => fun emqx_guard_emqx:export/2,
        copy => fun emqx_guard_copies:enqueue/2,
        offsite => fun emqx_guard_offsite_queue:enqueue/1,
        record => fun(_Outcome) -> ok end,
        alarm => fun emqx_guard_alarm:update/1,
        notify => fun emqx_guard_notify:run_finished/1,
        events => fun emqx_guard_events:backup_finished/1,
        report => fun emqx_guard_steps:noop/1
    }.

%%--------------------------------------------------------------------------------------------
%% Steps
%%--------------------------------------------------------------------------------------------

elect(New = #{trigger := Trigger}, Request, #{elect := Elect} = Deps) ->
    case Elect(Trigger, maps:get(instant, Request, undefined), fun() -> backup(New, Request, Deps) end) of
        {skip, Skip} -> emqx_guard_outcome:skip(New, Skip);
        Outcome -> Outcome
    end.

%% export, protect, verify, plugins and prune (one step function: the companion first, then
%% retention), copy, offsite: each step returns `{ok, Outcome}' or `{failed, Reason, Outcome}',
%% which ends the run as failed.
backup(New, Request, Deps) ->
    Steps = [fun export/3, fun protect/3, fun verify/3, fun prune/3, fun copy/3, fun offsite/3],
    Dir = emqx_guard_emqx:backup_dir(),
    %% what interrupted exports left (no other run is going): removed before this one starts
    _ = emqx_guard_leftovers:sweep(#{at => run, quiet_ms => maps:get(export_timeout, Request)}),
    Limit = maps:get(io_limit, Request, emqx_guard_backups:limit()),
    %% when the backup is made, by the clock EMQX names the export by (the scheduler's may be
    %% another in tests): recorded with it, retention counts its periods from it
    MadeAt = erlang:system_time(millisecond),
    Context = Request#{dir => Dir, slot => emqx_guard_export_files:prepare(Dir), io_limit => Limit, made_at => MadeAt},
    Done = lists:foldl(
        fun
            (Step, {ok, O}) -> Step(O, Context, Deps);
            (_Step, Failed) -> Failed
        end,
        {ok, New},
        Steps
    ),
    case Done of
        {ok, Outcome} -> Outcome;
        {failed, Reason, Outcome} -> emqx_guard_outcome:fail(Outcome, Reason)
    end.

export(O, Context = #{export_timeout := Timeout, slot := Slot}, #{export := Export, report := Report}) ->
    Report({started, export, #{}}),
    T0 = erlang:monotonic_time(millisecond),
    Heard = fun
        ({line, Line}) -> Report({line, export, Line});
        ({tick, Ms, Tarball}) -> Report({progress, export, #{elapsed_ms => Ms, written => emqx_guard_export_files:written(Tarball)}})
    end,
    Done =
        case Export(Timeout, (emqx_guard_export_files:export_opts(Slot))#{on_event => Heard}) of
            {ok, #{filename := Made, size := Size}} ->
                case emqx_guard_export_files:place(Slot, Made) of
                    {ok, Path} ->
                        {ok, O#{file => filename:basename(Path), path => Path, size => Size}};
                    {error, Reason} ->
                        failed(O#{removed => discard(#{tarball => Made}, Context)}, Reason)
                end;
            {error, Reason} ->
                {Made, Why} = made(Reason),
                Removed = discard(Made, Context),
                failed(O#{removed => Removed}, explain(Why, Context))
        end,
    reported(export, Done, T0, Report, fun(#{file := File, size := Size}) -> #{file => File, size => Size} end).

%% What a failed export had started to write (to be removed), and the reason without it.
made({Kind, Detail = #{tarball := _}}) -> {maps:with([tarball], Detail), {Kind, maps:remove(tarball, Detail)}};
made(Reason) -> {#{}, Reason}.

%% A reason EMQX nested deep (a full disk inside mnesia's or erl_tar's terms, a call that timed
%% out) becomes one `emqx_guard_outcome:format_error/1' can say in words, with what it needs:
%% the backup directory, and for a full disk the space free there now and the size of the newest
%% backup. The raw reason stays inside (it is logged, never shown).
explain(Reason = {Kind, _}, #{dir := Dir}) when Kind =:= export_failed; Kind =:= export_crashed ->
    case emqx_guard_export_problem:find(Reason) of
        {file, Posix, _Path} ->
            {export_disk_error, (emqx_guard_export_files:disk_facts(Dir, Posix))#{posix => Posix, raw => Reason}};
        {timeout, Call} ->
            {export_call_timeout, #{call => Call, raw => Reason}};
        none ->
            Reason
    end;
explain(Reason, _Context) ->
    Reason.

protect(O = #{path := Path}, _Context, #{report := Report}) ->
    case emqx_guard_backups:make_private(Path) of
        ok ->
            Report({done, protect, #{mode => <<"0600">>}}),
            {ok, O};
        {error, Why} ->
            Line = emqx_guard_outcome:format_error(Why),
            Report({warned, protect, #{warning => Line}}),
            {ok, emqx_guard_outcome:warn(O, Line)}
    end.

verify(O = #{path := Path, size := Size}, Context, #{report := Report}) ->
    Report({started, verify, #{file => maps:get(file, O), size => Size}}),
    T0 = erlang:monotonic_time(millisecond),
    Tick = fun(Ms) -> Report({progress, verify, #{elapsed_ms => Ms}}) end,
    Done =
        case emqx_guard_backups:check(Path, maps:get(io_limit, Context), job_base_ms(Context), Tick) of
            {ok, Record = #{result := ok, sha256 := Sha, version := Version}} ->
                ok = emqx_guard_verifications:add([Record#{made_at => maps:get(made_at, Context)}]),
                {ok, O#{sha256 => Sha, version => Version}};
            {ok, #{result := {error, Why}}} ->
                bad_file(O, Context, Why);
            {error, {not_found, _} = Why} ->
                failed(O#{removed => []}, {verify_failed, Why});
            {error, Why} ->
                %% no verdict (the verifier could not run, read the file, or finish in time):
                %% keep the file, it may well be good
                failed(O, {verify_unavailable, Why})
        end,
    reported(verify, Done, T0, Report, fun(_) -> #{size => Size, result => ok} end).

%% A new file that does not verify is deleted (EMQX removed its staging directory when it
%% returned).
bad_file(O = #{path := Path, file := Name}, _Context, Why) ->
    Removed =
        case file:delete(Path) of
            ok -> [Name];
            {error, enoent} -> [];
            {error, Posix} ->
                ?LOG_WARNING(#{msg => emqx_guard_backup_not_removed, file => Name, reason => Posix}),
                []
        end,
    failed(O#{removed => Removed}, {verify_failed, Why}).

prune(O0 = #{path := Path}, Context = #{dir := Dir, keep := Keep}, #{report := Report}) ->
    O = emqx_guard_companion:beside(O0, Report),
    Limit = maps:get(io_limit, Context),
    Rules = made_now(maps:get(retention, Context, Keep), O, Context),
    Report({started, prune, #{keep => Keep, policy => policy_text(Rules)}}),
    T0 = erlang:monotonic_time(millisecond),
    Progress = emqx_guard_steps:throttled(Report),
    OnProgress = fun(P) -> Progress({progress, prune, maps:without([bytes_read], P)}) end,
    case emqx_guard_backups:prune(Dir, Rules, Path, Limit, maps:get(retention_max_ms, Context, default), OnProgress) of
        {ok, Pruned = #{pruned := Deleted}} ->
            Report({done, prune, #{duration_ms => emqx_guard_steps:since(T0), deleted => length(Deleted)}}),
            {ok, maps:merge(O, Pruned)};
        {error, Why} ->
            Read =
                case Why of
                    {retention_incomplete, #{bytes_read := Bytes}} -> Bytes;
                    _ -> 0
                end,
            Line = emqx_guard_outcome:format_error(Why),
            Report({warned, prune, #{duration_ms => emqx_guard_steps:since(T0), warning => Line}}),
            {ok, emqx_guard_outcome:warn(O#{pruned => [], retention_read => Read}, Line)}
    end.

%% The new backup was made as the run's export began (the rules were taken before it existed).
made_now(Rules = #{made := Made}, #{file := File}, #{made_at := At}) ->
    Rules#{made := Made#{File => At}};
made_now(Keep, _O, _Context) ->
    Keep.

policy_text(#{policy := Policy}) -> Policy;
policy_text(Keep) -> emqx_guard_retention:text(Keep).

copy(O, #{keep := Keep}, #{copy := Copy, report := Report}) ->
    ok = Copy(O, Keep),
    Report({done, copy, #{to => emqx_guard_cores:running() -- [node()]}}),
    {ok, O}.

%% Handed over, like the copies: the upload happens after the run, in its own queue.
offsite(O, _Context, #{offsite := Offsite, report := Report}) ->
    ok = Offsite(O),
    case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
        {ok, Config} -> Report({done, offsite, #{destination => emqx_guard_offsite:where(Config)}});
        off -> ok
    end,
    {ok, O}.

%% A step's end as its report says it: done (with what Facts(Outcome) says it did) or failed
%% (with its error line), after how long.
reported(Step, Done, T0, Report, Facts) ->
    Ms = emqx_guard_steps:since(T0),
    case Done of
        {ok, O} -> Report({done, Step, (Facts(O))#{duration_ms => Ms}});
        {failed, Reason, _} -> Report({failed, Step, #{duration_ms => Ms, error => emqx_guard_outcome:format_error(Reason)}})
    end,
    Done.

failed(O, Reason) ->
    {failed, Reason, O}.

%% A background job of the run may take the export's timeout (plus what its read limit needs).
job_base_ms(#{export_timeout := infinity}) -> 24 * 3600 * 1000;
job_base_ms(#{export_timeout := Ms}) -> max(Ms, 1000).

%% What the failed export made, and only that: a tarball that verifies is kept.
discard(Made, Context = #{slot := Slot}) ->
    Check = fun(Path) ->
        case emqx_guard_backups:check(Path, maps:get(io_limit, Context), job_base_ms(Context)) of
            {ok, Record = #{result := ok}} -> {complete, Record};
            _ -> incomplete
        end
    end,
    emqx_guard_export_files:discard(Slot, Made, Check).

%%--------------------------------------------------------------------------------------------

%% A side effect after the run (record, alarm, notify): one that fails is logged and the others
%% still happen.
step(Name, Outcome, Deps) ->
    Fun = maps:get(Name, Deps),
    try Fun(Outcome) of
        _ -> ok
    catch
        Class:Reason ->
            ?LOG_ERROR(#{msg => emqx_guard_run_step_failed, step => Name, exception => Class, reason => Reason}),
            ok
    end.

%% An export's reason as EMQX gave it, for the log only (the outcome's `error' is its words);
%% redacted like every term the plugin logs.
raw_reason(#{reason := {Kind, #{raw := Raw}}}) when Kind =:= export_disk_error; Kind =:= export_call_timeout ->
    #{reason => emqx_guard_redact:term(Raw)};
raw_reason(#{reason := Raw = {Kind, _}}) when Kind =:= export_failed; Kind =:= export_crashed ->
    #{reason => emqx_guard_redact:term(Raw)};
raw_reason(_) ->
    #{}.

%% The one log line of a run.
log(O = #{result := ok}) ->
    ?LOG_INFO((maps:with([file, size, duration_ms, pruned, retention_read, warnings, trigger, instant], O))#{msg => emqx_guard_backup_done});
log(O = #{result := failed}) ->
    Report = maps:merge(maps:with([file, removed, error, duration_ms, trigger, instant], O), raw_reason(O)),
    ?LOG_ERROR(Report#{msg => emqx_guard_backup_failed});
log(O = #{result := skipped}) ->
    ?LOG_INFO((maps:with([error, trigger, instant, responsible, exported_by], O))#{msg => emqx_guard_backup_skipped}).
