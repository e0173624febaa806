%% @doc The receiving side of a copy of a backup (`emqx_guard_replica' sends it), and the check
%% of a backup kept here that both sides use.
%%
%% <ol>
%% <li>`start/5' refuses a name that is not an EMQX export name (or the plugins companion name of
%%     one, `emqx_guard_companion': checked by its manifest and SHA-256, no record, no prune, not
%%     counted as a copy); a file of that name already in
%%     the backup directory with the same sha256 is reported as present (nothing is sent), one
%%     with other content is an error (a backup is never overwritten or renamed).</li>
%% <li>The receiver writes into `<backup dir>/.emqx_guard_incoming/<unique>/<name>' (the same
%%     name, because verification checks that the tarball's top directory matches its name),
%%     acknowledging each chunk.</li>
%% <li>At the end it checks the size, syncs, sets mode 0600 and the source's mtime, verifies
%%     the file (`emqx_guard_backups:check/1') and compares its sha256 with the sender's, renames
%%     it into the backup directory (recording the verdict and, when the sender knew it, when
%%     the backup was made: `made_at'), then runs retention there (this node's rules,
%%     `emqx_guard_retention:local/1'; never the new file) and answers the sender.</li>
%% </ol>
%% It gives up when the sender dies or stays silent for `?IDLE_MS', and then deletes its
%% temporary directory; `clear_incoming/0' deletes what a receiver left when its node died.
%% The result is recorded here too (`emqx_guard_copies:record/1').
-module(emqx_guard_replica_receiver).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([start/5, clear_incoming/0, verify_kept/1, finish_ms/0]).

-export_type([meta/0]).

-define(IDLE_MS, 60000).
%% Verification of a large file on the receiver takes a while.
-define(FINISH_MS, 10 * 60000).
%% Retention where a copy lands, within the sender's wait for the answer (what it has not read by
%% then it reads at the next copy or run: each verdict is kept as it is reached).
-define(PRUNE_MS, ?FINISH_MS div 2).
-define(INCOMING, ".emqx_guard_incoming").

-type meta() :: #{
    name := binary(),
    size := non_neg_integer(),
    sha256 := binary(),
    mtime := integer(),
    kind => replicate | catch_up,
    created_at => integer(),
    %% when the backup was made (its run's start), when the sender knows it
    made_at => integer()
}.

%% @doc How long a sender waits for the answer after the last byte: the receiver's time to
%% verify, install and prune.
-spec finish_ms() -> pos_integer().
finish_ms() ->
    ?FINISH_MS.

%% @doc Prepares a copy of the backup described by Meta from process Sender on node From.
%% Returns `{ok, ReceiverPid}', `{ok, already_present}' or `{error, {copy_failed, Why}}'
%% (`emqx_guard_cluster_errors'). The result it sends the sender at the end is of protocol
%% version 1: `ok' or `{error, Line}'.
-spec start(meta(), pos_integer(), pid(), reference(), node()) ->
    {ok, pid() | already_present} | {error, {copy_failed, emqx_guard_cluster_errors:why()}}.
start(Meta = #{name := Name, sha256 := Sha}, Keep, Sender, Ref, From) ->
    case emqx_guard_core:is_export_name(Name) orelse emqx_guard_companion:is_name(Name) of
        false ->
            failed({not_export_name, Name});
        true ->
            Dir = emqx_guard_emqx:backup_dir(),
            Final = filename:join(Dir, Name),
            case filelib:is_file(Final) of
                true ->
                    case kept(Final) of
                        {ok, Sha} ->
                            {ok, already_present};
                        {ok, _Other} ->
                            failed({other_content, {Name, node()}});
                        {error, _} ->
                            failed({kept_not_verified, {Name, node()}})
                    end;
                false ->
                    TmpDir = filename:join([Dir, ?INCOMING, integer_to_list(erlang:unique_integer([positive]))]),
                    Tmp = filename:join(TmpDir, Name),
                    %% the receiver opens the file itself (it owns it) and says whether it could
                    Starter = self(),
                    {Pid, MRef} = spawn_monitor(fun() ->
                        case prepare(Tmp) of
                            {ok, Fd} ->
                                Starter ! {self(), opened},
                                receiver(Meta, Keep, Sender, Ref, From, Fd, Tmp, TmpDir, Final);
                            {error, Posix} ->
                                _ = file:del_dir_r(TmpDir),
                                exit({cannot_open, Posix})
                        end
                    end),
                    receive
                        {Pid, opened} ->
                            demonitor(MRef, [flush]),
                            {ok, Pid};
                        {'DOWN', MRef, process, Pid, {cannot_open, Posix}} ->
                            failed({cannot_write, {Dir, node(), Posix}});
                        {'DOWN', MRef, process, Pid, Why} ->
                            failed({receiver_failed, {node(), Why}})
                    end
            end
    end.

prepare(Tmp) ->
    case filelib:ensure_dir(Tmp) of
        ok ->
            _ = file:change_mode(filename:dirname(filename:dirname(Tmp)), 8#700),
            file:open(Tmp, [write, exclusive, raw, binary]);
        {error, _} = Error ->
            Error
    end.

receiver(Meta, Keep, Sender, Ref, From, Fd, Tmp, TmpDir, Final) ->
    MRef = monitor(process, Sender),
    Result =
        try receive_chunks(Fd, Sender, Ref, MRef, 0) of
            {ok, Bytes} -> finish(Meta, Keep, Fd, Bytes, Tmp, Final);
            {error, _} = Error -> Error
        catch
            Class:Reason -> failed({receiver_crashed, {Class, Reason}})
        end,
    _ = file:close(Fd),
    _ = file:del_dir_r(TmpDir),
    %% the result crosses to the sender: an error as its line
    Sender ! {emqx_guard_copy_result, Ref, emqx_guard_cluster_errors:wire(Result)},
    %% a sender that does not say is treated as a catch-up: it does not count as a fresh backup
    Created = maps:get(created_at, Meta, maps:get(mtime, Meta) * 1000),
    Kind = maps:get(kind, Meta, catch_up),
    [ok = emqx_guard_copies:record(emqx_guard_copies:result(node(), From, maps:get(name, Meta), Kind, Created, Result))
     || not maps:get(companion, Meta, false)],
    ok.

receive_chunks(Fd, Sender, Ref, MRef, Bytes) ->
    receive
        {emqx_guard_copy_chunk, Ref, Data} ->
            case file:write(Fd, Data) of
                ok ->
                    Sender ! {emqx_guard_copy_ack, Ref},
                    receive_chunks(Fd, Sender, Ref, MRef, Bytes + byte_size(Data));
                {error, Posix} ->
                    failed({write_error, {node(), Posix}})
            end;
        {emqx_guard_copy_eof, Ref, Sent} when Sent =:= Bytes ->
            {ok, Bytes};
        {emqx_guard_copy_eof, Ref, Sent} ->
            failed({size_sent, {Sent, Bytes}});
        {emqx_guard_copy_abort, Ref} ->
            failed(sender_gave_up);
        {'DOWN', MRef, process, _, Why} ->
            failed({sender_stopped, Why})
    after ?IDLE_MS ->
        failed(sender_silent)
    end.

finish(Meta = #{name := Name, size := Size, sha256 := Sha, mtime := MTime}, Keep, Fd, Bytes, Tmp, Final) ->
    Synced = file:sync(Fd),
    _ = file:close(Fd),
    case {Synced, Bytes} of
        {{error, Posix}, _} ->
            failed({cannot_sync, {node(), Posix}});
        {ok, Size} ->
            %% verified as it stays (mtime, mode), so that its record holds after the rename
            _ = file:write_file_info(Tmp, #file_info{mtime = MTime}, [{time, posix}]),
            Private = file:change_mode(Tmp, 8#600),
            case Private =:= ok andalso check(Meta, Tmp) of
                false ->
                    {error, Posix} = Private,
                    failed({cannot_set_mode, Posix});
                {{ok, Sha}, Record} ->
                    install(Name, Tmp, Final, Keep, made(Record, Meta));
                {{ok, Other}, _} ->
                    failed({sha256_differs, {Other, Sha}});
                {{error, Why}, _} ->
                    failed({copy_not_verified, Why})
            end;
        {ok, _} ->
            failed({size_arrived, {Bytes, Size}})
    end.

%% A backup read in full and verified; its plugins companion: its manifest read, its SHA-256
%% (`emqx_guard_companion'), no record.
check(#{companion := true}, Tmp) ->
    case emqx_guard_companion:read(Tmp) of
        {ok, _} -> {emqx_guard_companion:sha256(Tmp), none};
        {error, Why} -> {failed({companion_unreadable, Why}), none}
    end;
check(_Meta, Tmp) ->
    verify(Tmp).

kept(Final) ->
    case emqx_guard_companion:is_name(filename:basename(Final)) of
        true -> emqx_guard_companion:sha256(Final);
        false -> verify_kept(Final)
    end.

%% The copy's record says when the backup was made, when the sender knew it.
made(none, _Meta) -> none;
made(Record, #{made_at := At}) when is_integer(At) -> Record#{made_at => At};
made(Record, _Meta) -> Record.

%% Retention here follows this node's settings (the cluster's: they are synced, pins included);
%% the sender's Keep (a count: all a sender of 0.1.0 knows) is not used.
install(Name, Tmp, Final, _Keep, Record) ->
    case filelib:is_file(Final) of
        true ->
            %% arrived meanwhile through another copy; ours is identical (same verified sha256)
            ok;
        false ->
            case file:rename(Tmp, Final) of
                ok when Record =:= none ->
                    %% a plugins companion: no record, nothing to prune
                    ok;
                ok ->
                    ok = emqx_guard_verifications:add([Record]),
                    Rules = emqx_guard_retention:local(emqx_guard_settings:get()),
                    _ = emqx_guard_backups:prune(filename:dirname(Final), Rules, Final, ?PRUNE_MS),
                    ?LOG_INFO(#{msg => emqx_guard_backup_copy_received, file => Name}),
                    ok;
                {error, Posix} ->
                    failed({cannot_rename, {filename:dirname(Final), Posix}})
            end
    end.

%% @doc Deletes `<backup dir>/.emqx_guard_incoming' and everything in it: what a receiver left
%% there when its node died mid-copy (a partial tarball, secret data). Called when the copies
%% server starts, before any copy to this node can begin. Never raises.
-spec clear_incoming() -> ok.
clear_incoming() ->
    Dir = filename:join(emqx_guard_emqx:backup_dir(), ?INCOMING),
    case file:del_dir_r(Dir) of
        ok ->
            ?LOG_INFO(#{msg => emqx_guard_incoming_cleared, dir => Dir});
        {error, enoent} ->
            ok;
        {error, Posix} ->
            ?LOG_WARNING(#{msg => emqx_guard_incoming_not_cleared, dir => Dir, reason => Posix})
    end.

%% @doc Reads a backup kept here (Path in the backup directory) in full and records the verdict:
%% `{ok, Sha256}' or `{error, Reason}' (the check's, `emqx_guard_backups:check/1'). The check of
%% a copy already present, and of the source of a catch-up.
-spec verify_kept(file:filename_all()) -> {ok, binary()} | {error, term()}.
verify_kept(Path) ->
    {Result, Record} = verify(Path),
    ok = emqx_guard_verifications:add([R || R <- [Record], R =/= none]),
    Result.

%% Reads Path in full (a background job, `emqx_guard_backups:check/1'): `{ok, Sha256}' or
%% `{error, Reason}', with the record of the verdict (`none' when no check reached one).
verify(Path) ->
    case emqx_guard_backups:check(Path) of
        {ok, R = #{result := ok, sha256 := Sha}} -> {{ok, Sha}, R};
        {ok, R = #{result := {error, {_, _} = Why}}} -> {{error, Why}, R};
        {error, {_, _} = Why} -> {{error, Why}, none}
    end.

failed(Why) ->
    {error, {copy_failed, Why}}.
