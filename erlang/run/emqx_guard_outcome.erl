%% @doc The outcome of one backup run: the one value that the run builds step by step and that
%% every later consumer reads as it is (`guard backup_now' and `backup_status', the alarm, the
%% notifications, the persisted run state, the cluster view), and its persisted form.
%%
%% An outcome is a map:
%% <ul>
%% <li>always: `trigger' (`scheduled' | `catchup' | `manual' | `pre_restore'), `started_at' (Unix ms),
%%     `duration_ms', `node', `result' (`ok' | `failed' | `skipped'); `instant' for a scheduled
%%     or catch-up run (the instant it stands for);</li>
%% <li>what the steps found: `file' (the export's name), `path' (absolute), `size', `sha256',
%%     `version', `pruned' (names deleted by retention, oldest first), `prune_failed' and
%%     `prune_skipped' (`[{Name, Why}]'), `retention_read' (bytes retention read: the files it
%%     verified; those with a matching verification record are not read), `removed' (what a
%%     failed run deleted of its own);</li>
%% <li>`warnings': lines for a good backup whose side step failed (file mode, retention);</li>
%% <li>a failed or skipped run: `reason' (a tagged term, never persisted) and `error', its one
%%     line for people, made by `format_error/1'; a skipped run also names the `responsible'
%%     node or the node that `exported_by'.</li>
%% </ul>
%% What the other nodes of the cluster learn of a backup made (or failed) on one node is its
%% `summary/1': result, node, trigger, times, file, size and error line.
%%
%% `format_error/1' is the one place where the plugin's reasons become text (see its doc).
-module(emqx_guard_outcome).

-import(emqx_guard_value, [is_text/1, is_texts/1, is_instant/1]).

-export([new/3, fail/2, skip/2, skipped/4, warn/2, finish/2, summary/1, newer/2]).
-export([format_error/1, format_excluded/1, stored/1, from_stored/1]).

-export_type([outcome/0, trigger/0]).

-type trigger() :: scheduled | catchup | manual | pre_restore.
-type outcome() :: #{
    trigger := trigger(),
    started_at := integer(),
    node := node(),
    result := running | ok | failed | skipped,
    duration_ms => non_neg_integer(),
    instant => integer(),
    file => binary(),
    path => binary(),
    size => non_neg_integer(),
    sha256 => binary(),
    version => binary(),
    pruned => [binary()],
    prune_failed => [{binary(), binary()}],
    prune_skipped => [{binary(), binary()}],
    retention_read => non_neg_integer(),
    removed => [binary()],
    warnings => [binary()],
    reason => term(),
    error => binary(),
    responsible => node(),
    exported_by => node()
}.

%% The fields kept in the run state file, and their checks on load. (Files written while the
%% off-site copy was a step of the run hold an `offsite' field: dropped, as every unknown one.)
-define(STORED, [
    trigger, started_at, node, result, duration_ms, instant, file, path, size, sha256, version, pruned,
    removed, warnings, error
]).
%% The fields of a backup's outcome every node of the cluster learns (`summary/1').
-define(SUMMARY, [trigger, started_at, duration_ms, node, result, instant, file, size, error]).

%% @doc A run that starts now: `result' is `running' until `finish/2'.
-spec new(trigger(), integer() | undefined, integer()) -> outcome().
new(Trigger, Instant, StartedAt) ->
    O = #{trigger => Trigger, started_at => StartedAt, node => node(), result => running, warnings => []},
    case Instant of
        undefined -> O;
        _ -> O#{instant => Instant}
    end.

%% @doc The run failed for Reason.
-spec fail(outcome(), term()) -> outcome().
fail(O, Reason) ->
    O#{result => failed, reason => Reason, error => format_error(Reason)}.

%% @doc The fire is skipped: another node exports this instant (see `emqx_guard_election'), or
%% this node's previous run, started at the time given, was still going.
-spec skip(outcome(), emqx_guard_election:skip() | {previous_run_still_running, integer()}) -> outcome().
skip(O, {Reason, Node} = Skip) when is_atom(Node) ->
    Key =
        case Reason of
            already_exported -> exported_by;
            _ -> responsible
        end,
    O#{result => skipped, reason => Reason, Key => Node, error => format_error(Skip)};
skip(O, Reason) ->
    O#{result => skipped, reason => Reason, error => format_error(Reason)}.

%% @doc A fire for Instant skipped at Now for Reason (`skip/2'), closed at once.
-spec skipped(trigger(), integer(), integer(), emqx_guard_election:skip() | {previous_run_still_running, integer()}) ->
    outcome().
skipped(Trigger, Instant, Now, Reason) ->
    finish(skip(new(Trigger, Instant, Now), Reason), 0).

%% @doc Adds a warning line: the backup is good, a side step failed.
-spec warn(outcome(), binary()) -> outcome().
warn(O = #{warnings := Ws}, Line) ->
    O#{warnings => Ws ++ [Line]}.

%% @doc Closes a run that took DurationMs: `ok' unless it failed or was skipped.
-spec finish(outcome(), non_neg_integer()) -> outcome().
finish(O = #{result := running}, DurationMs) ->
    O#{result => ok, duration_ms => DurationMs};
finish(O, DurationMs) ->
    O#{duration_ms => DurationMs}.

%% @doc The outcome of a backup (`ok' or `failed') as every node of the cluster learns it: which
%% node, when, the trigger and instant, the file and size, the error line. An outcome itself,
%% persisted like one (`stored/1', `from_stored/1').
-spec summary(outcome()) -> outcome().
summary(O) ->
    maps:with(?SUMMARY, O).

%% @doc Whether backup outcome A is newer than B (`undefined': none known): the later start,
%% the node name deciding between equal starts. The same outcome is not newer than itself.
-spec newer(outcome(), outcome() | undefined) -> boolean().
newer(#{started_at := _}, undefined) ->
    true;
newer(#{started_at := SA, node := NA}, #{started_at := SB, node := NB}) ->
    {SA, NA} > {SB, NB}.

%%--------------------------------------------------------------------------------------------
%% Reasons as text
%%--------------------------------------------------------------------------------------------

%% @doc One line a person understands for a reason, the one place where the plugin's reasons
%% become text (command line, dashboard, notifications, alarms, log): the `Reason' of any
%% `{error, Reason}' of the plugin, `{Tag :: atom(), Detail}'. The core's own reasons (the NIF
%% contract) are said by their Detail line; a binary is a line already (another node's, or an
%% older version's); anything else is printed short, on one line.
-spec format_error(term()) -> binary().
%% the run: export
format_error({export_unavailable, _Missing}) ->
    <<"this EMQX has no data export (emqx_mgmt_data_backup is missing; EMQX 5.1 or newer is needed)">>;
format_error({export_timeout, #{timeout_ms := Ms}}) when is_integer(Ms), Ms rem 1000 =:= 0 ->
    text("export timed out after ~b s", [Ms div 1000]);
format_error({export_timeout, #{timeout_ms := Ms}}) ->
    text("export timed out after ~tp ms", [Ms]);
format_error({export_disk_error, Facts = #{posix := Posix}}) ->
    <<"export failed: ", (disk_words(Posix, Facts))/binary>>;
format_error({export_call_timeout, #{call := {M, F}}}) ->
    text("export failed: a call inside EMQX timed out (~ts:~ts)", [M, F]);
format_error({export_call_timeout, _}) ->
    <<"export failed: something inside EMQX timed out">>;
format_error({export_failed, #{reason := Reason}}) ->
    text("export failed: ~ts", [describe(Reason)]);
format_error({export_crashed, #{class := Class, reason := Reason}}) ->
    text("export crashed (~ts): ~ts", [Class, describe(Reason)]);
format_error({export_not_placed, #{name := Name, posix := eexist}}) ->
    text("the new export ~ts could not be moved into the backup directory: a file of that name is already there", [Name]);
format_error({export_not_placed, #{name := Name, posix := Posix}}) ->
    text("the new export ~ts could not be moved into the backup directory: ~ts", [Name, describe(Posix)]);
%% the run: its other steps, its process
format_error({verify_failed, {_Reason, Detail}}) ->
    text("verification failed: ~ts", [describe(Detail)]);
format_error({verify_unavailable, {_Reason, Detail}}) ->
    text("could not verify the new backup, kept it unverified: ~ts", [describe(Detail)]);
format_error({mode_not_set, #{file := Name, posix := Posix}}) ->
    text("could not make ~ts private (mode 0600): ~ts", [Name, describe(Posix)]);
format_error({retention_incomplete, #{checked := Checked, checked_bytes := CheckedBytes, remaining := Left, remaining_bytes := LeftBytes}}) ->
    text("retention checked ~B of ~B files (~ts of ~ts) before its time ran out; it continues at the next run", [
        Checked, Checked + Left, emqx_guard_render:size(CheckedBytes), emqx_guard_render:size(CheckedBytes + LeftBytes)
    ]);
format_error({retention_failed, {_Reason, Detail}}) ->
    text("retention failed: ~ts", [describe(Detail)]);
format_error({crashed, #{class := Class, reason := Reason}}) ->
    text("the backup run crashed (~ts): ~ts", [Class, describe(Reason)]);
format_error({plugin_stopped, _Why}) ->
    <<"interrupted: the plugin stopped while the backup ran">>;
format_error({worker_died, Reason}) ->
    text("the backup process died: ~ts", [describe(Reason)]);
format_error({previous_run_still_running, _Since}) ->
    <<"the previous backup was still running">>;
%% the scheduler, the election (why a node does not export)
format_error({backups_cannot_run, Why}) ->
    <<"backups cannot run: ", (format_error(Why))/binary>>;
format_error({schedule_error, Why}) ->
    text("the schedule cannot be computed: ~ts", [format_error(Why)]);
format_error({already_running, #{started_at := Started, zone := Zone}}) ->
    text("a backup is already running (started ~ts); not starting another one", [emqx_guard_render:in_zone(Zone, Started)]);
format_error({last_backup_failed, #{node := Node, error := Error}}) when Node =/= node() ->
    text("the last backup failed on ~ts: ~ts", [Node, Error]);
format_error({last_backup_failed, #{error := Error}}) ->
    text("the last backup failed: ~ts", [Error]);
format_error(no_core_node) ->
    <<"no running core node in the cluster">>;
format_error({no_candidate, Excluded}) when is_list(Excluded) ->
    text("no core node can export scheduled backups (~ts)", [format_excluded(Excluded)]);
format_error({not_responsible, Node}) ->
    text("~ts exports this one", [Node]);
format_error(plugin_not_running) ->
    <<"plugin not running">>;
format_error({not_running, emqx_guard_scheduler}) ->
    <<"the emqx_guard scheduler is not running">>;
format_error({no_answer, Why}) ->
    text("no answer (~ts)", [describe(Why)]);
format_error({version_mismatch, Theirs, Ours}) ->
    text("version mismatch: it speaks protocol version ~ts, this node ~ts", [versions(Theirs), versions(Ours)]);
format_error({older_plugin, Lowest}) ->
    text("an older plugin version (protocol 1), which exports only as the lowest core node (~ts)", [Lowest]);
format_error({nif_not_loaded, Detail}) ->
    text("the NIF library is not loaded: ~ts", [describe(Detail)]);
format_error({nif_failed, Detail}) ->
    text("the NIF library does not work: ~ts", [describe(Detail)]);
format_error({export_unsupported, Why}) ->
    format_error(Why);
format_error({lock_held, _Node}) ->
    <<"another node holds the lock for this instant">>;
format_error({already_exported, Node}) ->
    text("this instant was already exported by ~ts", [Node]);
%% the schedule (emqx_guard_cron)
format_error({schedule, never_fires}) ->
    <<"the schedule never fires">>;
format_error({schedule, {badarg, _}}) ->
    <<"the schedule cannot be computed for these arguments (an instant out of range?)">>;
format_error({schedule, {_Reason, Detail}}) ->
    describe(Detail);
%% off-site copies
format_error({offsite_upload_failed, #{file := File, reason := {_Reason, Detail}}}) ->
    text("upload of ~ts failed: ~ts", [File, describe(Detail)]);
format_error({offsite_crashed, #{class := Class, reason := Reason}}) ->
    text("the off-site job crashed (~ts): ~ts", [Class, describe(Reason)]);
format_error({offsite_list_failed, {_Reason, Detail}}) ->
    text("cannot list the remote backups: ~ts", [describe(Detail)]);
format_error({offsite_local_list_failed, Why}) ->
    text("cannot list the local backups: ~ts", [format_error(Why)]);
format_error({offsite_prune_failed, #{name := Name, detail := Detail}}) ->
    text("remote retention failed: ~ts: ~ts", [Name, describe(Detail)]);
format_error({offsite_prune_failed, {_Reason, Detail}}) ->
    text("remote retention failed: ~ts", [describe(Detail)]);
format_error({no_destination, _Type}) ->
    <<"no off-site destination is set (see guard backup_remote)">>;
%% the backup files, the plugin's own files
format_error({list_failed, #{dir := Dir, posix := Posix}}) ->
    text("cannot list ~ts: ~ts", [Dir, describe(Posix)]);
format_error({list_failed, {_Reason, Detail}}) ->
    describe(Detail);
format_error({no_such_backup, #{name := Name, dir := Dir}}) ->
    text("no backup named ~ts in ~ts (see guard backup_list)", [Name, Dir]);
format_error({cannot_write, #{path := Path, posix := Posix}}) ->
    text("cannot write ~ts: ~ts", [Path, describe(Posix)]);
format_error({newer_format_kept, #{path := Path, version := Vsn}}) ->
    text("not writing ~ts: it holds a newer format (version ~B) that could not be kept aside", [Path, Vsn]);
%% settings: the line the rule says
format_error({invalid_value, {Key, Why}}) ->
    text("~ts ~ts", [Key, format_error(Why)]);
format_error({invalid_value, Line}) ->
    describe(Line);
format_error({broken_rule, Line}) ->
    describe(Line);
format_error({unknown_setting, Key}) when is_atom(Key) ->
    text("unknown setting ~tp", [Key]);
format_error({unknown_setting, Key}) ->
    text("unknown setting ~ts", [Key]);
format_error({bad_duration, <<>>}) ->
    <<"must be a duration such as 24h, 90m or 0">>;
format_error({bad_duration, Given}) ->
    text("must be a duration such as 24h, 90m, 1h30m or 0, not \"~ts\"", [Given]);
format_error({bad_rate, Given}) ->
    text("must be a read rate such as 50MB/s, or off, not \"~ts\"", [Given]);
%% notifications
format_error({delivery_failed, Line}) ->
    describe(Line);
format_error({not_configured, Kind}) ->
    text("~ts is not configured", [Kind]);
format_error({R, Why}) when R =:= restore_refused; R =:= restore_failed ->
    emqx_guard_restore_errors:format(R, Why);
format_error({R, Why}) when R =:= copy_failed; R =:= no_report ->
    emqx_guard_cluster_errors:format(R, Why);
%% the core's own reasons: the Detail is the line
format_error({Reason, Detail}) when is_atom(Reason), is_binary(Detail) ->
    describe(Detail);
format_error(Reason) ->
    describe(Reason).

%% @doc The core nodes that cannot export, each with why (`emqx_guard_election:survey/0'), as
%% `node: why; node: why'.
-spec format_excluded([{node(), term()}]) -> binary().
format_excluded(Excluded) ->
    iolist_to_binary(lists:join(<<"; ">>, [text("~ts: ~ts", [N, format_error(Why)]) || {N, Why} <- Excluded])).

versions([]) -> <<"none">>;
versions(Vs) -> iolist_to_binary(lists:join(<<", ">>, [integer_to_binary(V) || V <- Vs])).

%% A disk error in words, with the directory; for a full disk the space free there (measured
%% after the failed export's own files were removed: what an export has) and about how much the
%% last backup took.
disk_words(enospc, Facts = #{dir := Dir}) ->
    text("no space left on device in ~ts~ts", [Dir, space_words(Facts)]);
disk_words(edquot, Facts = #{dir := Dir}) ->
    text("disk quota exceeded in ~ts~ts", [Dir, space_words(maps:remove(available, Facts))]);
disk_words(Posix, #{dir := Dir}) when Posix =:= eacces; Posix =:= eperm ->
    text("permission denied in ~ts: EMQX's user must be able to write there", [Dir]);
disk_words(erofs, #{dir := Dir}) ->
    text("~ts is on a read-only file system", [Dir]);
disk_words(eio, #{dir := Dir}) ->
    text("input/output error in ~ts (the disk may be failing)", [Dir]);
disk_words(Posix, #{dir := Dir}) when Posix =:= enoent; Posix =:= enotdir ->
    text("~ts or a directory in it is missing", [Dir]);
disk_words(Posix, #{dir := Dir}) when Posix =:= emfile; Posix =:= enfile ->
    text("too many open files (writing in ~ts)", [Dir]);
disk_words(Posix, #{dir := Dir}) ->
    text("~ts in ~ts", [describe(Posix), Dir]).

space_words(#{available := Free, last_size := Last}) ->
    text(" (~ts free once the failed export was removed; the last backup took about ~ts)", [
        emqx_guard_render:size(Free), emqx_guard_render:size(Last)
    ]);
space_words(#{available := Free}) ->
    text(" (~ts free once the failed export was removed)", [emqx_guard_render:size(Free)]);
space_words(#{last_size := Last}) ->
    text(" (the last backup took about ~ts)", [emqx_guard_render:size(Last)]);
space_words(_) ->
    <<>>.

%% Text for a reason of unknown shape: strings as they are, POSIX atoms in words, terms printed
%% short; always one line.
describe(Reason) ->
    Text =
        case emqx_guard_render:printable(Reason) of
            {true, Str} ->
                Str;
            false ->
                case Reason of
                    {badmatch, {error, Inner}} ->
                        describe(Inner);
                    {error, Inner} ->
                        describe(Inner);
                    A when is_atom(A) ->
                        case file:format_error(A) of
                            "unknown POSIX error" ++ _ -> atom_to_list(A);
                            Posix -> Posix
                        end;
                    _ ->
                        io_lib:format("~0tP", [Reason, 12])
                end
        end,
    one_line(Text).

one_line(Text) ->
    Flat = unicode:characters_to_binary(Text),
    Line = re:replace(Flat, "\\s*[\\r\\n]+\\s*", " ", [global, unicode, {return, binary}]),
    string:trim(Line).

%%--------------------------------------------------------------------------------------------
%% Persisted form
%%--------------------------------------------------------------------------------------------

%% @doc What the run state file keeps of an outcome: everything but the reason term (its line is
%% kept) and the details of retention's side lists.
-spec stored(outcome()) -> map().
stored(O) ->
    maps:with(?STORED, O).

%% @doc An outcome read back from the run state file, or `error' when any field is damaged (then
%% the whole record is dropped, so the alarm, the health check and `guard backup_status' never
%% see a damaged one). Fields this version does not know are dropped. Files written before the
%% outcome had one shape hold `pruned' as a count and one `warning' line: the count is dropped,
%% the line becomes `warnings'.
-spec from_stored(term()) -> {ok, outcome()} | error.
from_stored(#{started_at := S, duration_ms := D, trigger := T, result := R} = Stored) ->
    Known = maps:with(?STORED, upgrade(Stored)),
    Ok =
        is_instant(S) andalso
            is_integer(D) andalso D >= 0 andalso
            lists:member(T, [scheduled, catchup, manual, pre_restore]) andalso
            lists:member(R, [ok, failed]) andalso
            (R =:= ok orelse maps:is_key(error, Known)) andalso
            lists:all(fun({K, V}) -> field_ok(K, V) end, maps:to_list(maps:without([started_at, duration_ms, trigger, result], Known))),
    case Ok of
        true -> {ok, maps:merge(#{node => node(), warnings => []}, Known)};
        false -> error
    end;
from_stored(_) ->
    error.

upgrade(Stored) ->
    Counted =
        case Stored of
            #{pruned := N} when is_integer(N) -> maps:remove(pruned, Stored);
            _ -> Stored
        end,
    case Counted of
        #{warning := W} -> maps:put(warnings, [W], maps:remove(warning, Counted));
        _ -> Counted
    end.

field_ok(instant, V) -> is_instant(V);
field_ok(size, V) -> is_integer(V) andalso V >= 0;
field_ok(node, V) -> is_atom(V);
field_ok(K, V) when K =:= pruned; K =:= removed; K =:= warnings -> is_texts(V);
field_ok(_Text, V) -> is_text(V).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
