%% @doc Copies of backups on the other core nodes.
%%
%% A copy streams a backup file from the node that holds it to another node's backup directory:
%% <ol>
%% <li>The sender asks the receiving node (`erpc') to start a receiver: the name must be an EMQX
%%     export name; a file of that name already there with the same sha256 is reported as
%%     present (nothing is sent), one with other content is an error (a backup is never
%%     overwritten or renamed).</li>
%% <li>The receiver writes into `<backup dir>/.emqx_guard_incoming/<unique>/<name>' (the same
%%     name, because verification checks that the tarball's top directory matches its name),
%%     while the sender sends the file in chunks of `?CHUNK' bytes, at most `?WINDOW' of them
%%     unacknowledged: never the whole file in one message.</li>
%% <li>At the end the receiver checks the size, syncs, verifies the file with
%%     `emqx_guard_core:verify/1' and compares its sha256 with the sender's, sets mode 0600 and the
%%     source's mtime, renames it into the backup directory, then runs retention there (keep the
%%     newest `Keep', never the new file) and answers the sender.</li>
%% </ol>
%% Either side gives up when the other dies or stays silent for `?IDLE_MS'; the receiver then
%% deletes its temporary directory. Every copy's result is recorded through
%% `emqx_guard_copies:record/1' on both sides, with its kind (`replicate' for a backup
%% just exported, `catch_up' for a fetched older one) and the backup's creation time (the start
%% of the run that exported it, sent with the copy; else the file's mtime).
%%
%% A core node that comes back fetches the newest backups it lacks
%% (`emqx_guard_copies:catch_up/1'), asking a node that holds each to push it (`push_named/3').
-module(emqx_guard_replica).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([replicate/3, fetch/3, clear_incoming/0]).
%% Called on other nodes through erpc.
-export([start_receiver/5, push_named/3, list_names/0]).

-define(CHUNK, 256 * 1024).
-define(WINDOW, 4).
-define(IDLE_MS, 60000).
%% Verification of a large file on the receiver takes a while.
-define(FINISH_MS, 10 * 60000).
%% Retention where a copy lands, within the sender's wait for the answer (what it has not read by
%% then it reads at the next copy or run: each verdict is kept as it is reached).
-define(PRUNE_MS, ?FINISH_MS div 2).
-define(CALL_MS, 15000).
-define(INCOMING, ".emqx_guard_incoming").

-type copy_outcome() :: ok | {error, binary()}.
-type kind() :: replicate | catch_up.
-type meta() :: #{
    name := binary(),
    size := non_neg_integer(),
    sha256 := binary(),
    mtime := integer(),
    kind => kind(),
    created_at => integer()
}.

%%--------------------------------------------------------------------
%% Sender side
%%--------------------------------------------------------------------

%% @doc Copies a just verified backup (the outcome of its run: `path', `file', `sha256',
%% `started_at' as its creation time) to each of Targets, one after the other, and
%% records each result. Never raises.
-spec replicate(emqx_guard_outcome:outcome(), pos_integer(), [node()]) -> [{node(), copy_outcome()}].
replicate(#{path := Path, file := Name, sha256 := Sha} = Report, Keep, Targets) ->
    Created =
        case Report of
            #{started_at := T} when is_integer(T) -> T;
            _ -> undefined
        end,
    [{Node, push(Path, Name, Sha, Node, Keep, replicate, Created)} || Node <- Targets];
replicate(_Report, _Keep, _Targets) ->
    [].

%% @doc Called on the node holding `Name': pushes that backup to node `To' (the catch-up).
-spec push_named(binary(), node(), pos_integer()) -> copy_outcome().
push_named(Name, To, Keep) ->
    case emqx_guard_core:is_export_name(Name) of
        false ->
            {error, <<"not an EMQX export name">>};
        true ->
            Path = filename:join(emqx_guard_emqx:backup_dir(), Name),
            case verify_kept(Path) of
                {ok, Sha} -> push(Path, Name, Sha, To, Keep, catch_up, undefined);
                {error, Why} -> {error, <<"the source copy does not verify: ", Why/binary>>}
            end
    end.

push(Path, Name, Sha, To, Keep, Kind, Created0) ->
    Created =
        case Created0 of
            undefined -> mtime_ms(Path);
            _ -> Created0
        end,
    Outcome =
        try
            send(Path, #{name => bin(Name), sha256 => Sha, kind => Kind, created_at => Created}, To, Keep)
        catch
            Class:Reason ->
                {error, text("copy crashed: ~tp:~0tP", [Class, Reason, 10])}
        end,
    case Outcome of
        ok -> ?LOG_INFO(#{msg => emqx_guard_backup_copied, file => Name, to => To, kind => Kind});
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_backup_copy_failed, file => Name, to => To, kind => Kind, reason => Why})
    end,
    record(To, node(), Name, Kind, Created, Outcome),
    Outcome.

send(Path, Meta0, To, Keep) ->
    case file:read_file_info(Path, [{time, posix}]) of
        {ok, #file_info{size = Size, mtime = MTime}} ->
            Meta = Meta0#{size => Size, mtime => MTime},
            Ref = make_ref(),
            case erpc_call(To, start_receiver, [Meta, Keep, self(), Ref, node()]) of
                {ok, {ok, Receiver}} when is_pid(Receiver) ->
                    stream(Path, Receiver, Ref);
                {ok, {ok, already_present}} ->
                    ok;
                {ok, {error, Why}} ->
                    {error, Why};
                {ok, Other} ->
                    {error, text("unexpected answer: ~0tP", [Other, 8])};
                {error, Why} ->
                    {error, Why}
            end;
        {error, Posix} ->
            {error, text("cannot read ~ts: ~ts", [Path, file:format_error(Posix)])}
    end.

stream(Path, Receiver, Ref) ->
    MRef = monitor(process, Receiver),
    Result =
        case file:open(Path, [read, raw, binary]) of
            {ok, Fd} ->
                try
                    stream_chunks(Fd, Receiver, Ref, MRef, 0, 0)
                after
                    _ = file:close(Fd)
                end;
            {error, Posix} ->
                Receiver ! {emqx_guard_copy_abort, Ref},
                {error, text("cannot read ~ts: ~ts", [Path, file:format_error(Posix)])}
        end,
    demonitor(MRef, [flush]),
    Result.

stream_chunks(Fd, Receiver, Ref, MRef, InFlight, Sent) when InFlight >= ?WINDOW ->
    case await_ack(Ref, MRef) of
        ok -> stream_chunks(Fd, Receiver, Ref, MRef, InFlight - 1, Sent);
        {error, _} = Error -> Error
    end;
stream_chunks(Fd, Receiver, Ref, MRef, InFlight, Sent) ->
    case file:read(Fd, ?CHUNK) of
        {ok, Data} ->
            Receiver ! {emqx_guard_copy_chunk, Ref, Data},
            stream_chunks(Fd, Receiver, Ref, MRef, InFlight + 1, Sent + byte_size(Data));
        eof ->
            Receiver ! {emqx_guard_copy_eof, Ref, Sent},
            await_result(Ref, MRef);
        {error, Posix} ->
            Receiver ! {emqx_guard_copy_abort, Ref},
            {error, text("read error: ~ts", [file:format_error(Posix)])}
    end.

await_ack(Ref, MRef) ->
    receive
        {emqx_guard_copy_ack, Ref} -> ok;
        {emqx_guard_copy_result, Ref, Result} -> early_result(Result);
        {'DOWN', MRef, process, _, Why} -> {error, text("the receiver stopped: ~0tP", [Why, 8])}
    after ?IDLE_MS ->
        {error, <<"the receiver did not answer in time">>}
    end.

early_result(ok) -> {error, <<"the receiver finished early">>};
early_result({error, _} = Error) -> Error.

await_result(Ref, MRef) ->
    receive
        {emqx_guard_copy_ack, Ref} -> await_result(Ref, MRef);
        {emqx_guard_copy_result, Ref, Result} -> Result;
        {'DOWN', MRef, process, _, Why} -> {error, text("the receiver stopped: ~0tP", [Why, 8])}
    after ?FINISH_MS ->
        {error, <<"the receiver did not finish in time">>}
    end.

%%--------------------------------------------------------------------
%% Receiver side
%%--------------------------------------------------------------------

%% @doc Called on the receiving node: prepares a copy of the backup described by Meta from
%% process Sender. Returns `{ok, ReceiverPid}', `{ok, already_present}' or `{error, Line}'.
-spec start_receiver(meta(), pos_integer(), pid(), reference(), node()) ->
    {ok, pid() | already_present} | {error, binary()}.
start_receiver(Meta = #{name := Name, sha256 := Sha}, Keep, Sender, Ref, From) ->
    case emqx_guard_core:is_export_name(Name) of
        false ->
            {error, text("refused: ~ts is not an EMQX export name", [Name])};
        true ->
            Dir = emqx_guard_emqx:backup_dir(),
            Final = filename:join(Dir, Name),
            case filelib:is_file(Final) of
                true ->
                    case verify_kept(Final) of
                        {ok, Sha} ->
                            {ok, already_present};
                        {ok, _Other} ->
                            {error, text("~ts already exists on ~ts with other content", [Name, node()])};
                        {error, _} ->
                            {error, text("~ts already exists on ~ts and does not verify", [Name, node()])}
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
                            {error, text("cannot write in ~ts on ~ts: ~ts", [Dir, node(), file:format_error(Posix)])};
                        {'DOWN', MRef, process, Pid, Why} ->
                            {error, text("the receiver on ~ts failed: ~0tP", [node(), Why, 8])}
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
            Class:Reason -> {error, text("receiver crashed: ~tp:~0tP", [Class, Reason, 10])}
        end,
    _ = file:close(Fd),
    _ = file:del_dir_r(TmpDir),
    Sender ! {emqx_guard_copy_result, Ref, Result},
    %% a sender that does not say is treated as a catch-up: it does not count as a fresh backup
    Created = maps:get(created_at, Meta, maps:get(mtime, Meta) * 1000),
    record(node(), From, maps:get(name, Meta), maps:get(kind, Meta, catch_up), Created, Result).

receive_chunks(Fd, Sender, Ref, MRef, Bytes) ->
    receive
        {emqx_guard_copy_chunk, Ref, Data} ->
            case file:write(Fd, Data) of
                ok ->
                    Sender ! {emqx_guard_copy_ack, Ref},
                    receive_chunks(Fd, Sender, Ref, MRef, Bytes + byte_size(Data));
                {error, Posix} ->
                    {error, text("write error on ~ts: ~ts", [node(), file:format_error(Posix)])}
            end;
        {emqx_guard_copy_eof, Ref, Sent} when Sent =:= Bytes ->
            {ok, Bytes};
        {emqx_guard_copy_eof, Ref, Sent} ->
            {error, text("sent ~B bytes but ~B arrived", [Sent, Bytes])};
        {emqx_guard_copy_abort, Ref} ->
            {error, <<"the sender gave up">>};
        {'DOWN', MRef, process, _, Why} ->
            {error, text("the sender stopped: ~0tP", [Why, 8])}
    after ?IDLE_MS ->
        {error, <<"the sender went silent">>}
    end.

finish(#{name := Name, size := Size, sha256 := Sha, mtime := MTime}, Keep, Fd, Bytes, Tmp, Final) ->
    Synced = file:sync(Fd),
    _ = file:close(Fd),
    case {Synced, Bytes} of
        {{error, Posix}, _} ->
            {error, text("cannot sync on ~ts: ~ts", [node(), file:format_error(Posix)])};
        {ok, Size} ->
            %% verified as it stays (mtime, mode), so that its record holds after the rename
            _ = file:write_file_info(Tmp, #file_info{mtime = MTime}, [{time, posix}]),
            Private = file:change_mode(Tmp, 8#600),
            case Private =:= ok andalso verify(Tmp) of
                false ->
                    {error, Posix} = Private,
                    {error, text("cannot set mode 0600: ~ts", [file:format_error(Posix)])};
                {{ok, Sha}, Record} ->
                    install(Name, Tmp, Final, Keep, Record);
                {{ok, Other}, _} ->
                    {error, text("sha256 differs after the copy (~ts, expected ~ts)", [Other, Sha])};
                {{error, Why}, _} ->
                    {error, <<"the copy does not verify: ", Why/binary>>}
            end;
        {ok, _} ->
            {error, text("~B bytes arrived, the backup has ~B", [Bytes, Size])}
    end.

install(Name, Tmp, Final, Keep, Record) ->
    case filelib:is_file(Final) of
        true ->
            %% arrived meanwhile through another copy; ours is identical (same verified sha256)
            ok;
        false ->
            case file:rename(Tmp, Final) of
                ok ->
                    ok = emqx_guard_verifications:add([Record]),
                    _ = emqx_guard_backups:prune(filename:dirname(Final), Keep, Final, ?PRUNE_MS),
                    ?LOG_INFO(#{msg => emqx_guard_backup_copy_received, file => Name}),
                    ok;
                {error, Posix} ->
                    {error, text("cannot rename into ~ts: ~ts", [filename:dirname(Final), file:format_error(Posix)])}
            end
    end.

%%--------------------------------------------------------------------
%% Fetching and leftovers
%%--------------------------------------------------------------------

%% @doc Fetches backup Name to this node from the first of Sources (nodes holding it) that can
%% push it (`push_named/3'). Never raises.
-spec fetch(binary(), [node()], pos_integer()) -> copy_outcome().
fetch(_Name, [], _Keep) ->
    {error, <<"no node holds it any more">>};
fetch(Name, [Source | More], Keep) ->
    case erpc_call(Source, push_named, [Name, node(), Keep], ?FINISH_MS + ?IDLE_MS) of
        {ok, ok} -> ok;
        _ when More =/= [] -> fetch(Name, More, Keep);
        {ok, {error, _} = Error} -> Error;
        {ok, Other} -> {error, text("unexpected answer: ~0tP", [Other, 8])};
        {error, _} = Error -> Error
    end.

%% @doc Deletes `<backup dir>/.emqx_guard_incoming' and everything in it: what a receiver left
%% there when its node died mid-copy (a partial tarball, secret data). Called when the cluster
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

%% @doc Called on other nodes by the catch-up (`emqx_guard_copies:catch_up/1'): this node's
%% backups, `emqx_guard_backups:names/0'.
-spec list_names() -> [binary()] | {error, emqx_guard_backups:list_error()}.
list_names() ->
    emqx_guard_backups:names().

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

record(To, From, Name, Kind, Created, Outcome) ->
    Result = #{
        to => To, from => From, file => bin(Name), at => now_ms(), kind => Kind, created => Created, result => Outcome
    },
    try
        emqx_guard_copies:record(Result)
    catch
        Class:Reason -> ?LOG_WARNING(#{msg => emqx_guard_copy_not_recorded, exception => Class, reason => Reason})
    end.

erpc_call(Node, Fun, Args) ->
    erpc_call(Node, Fun, Args, ?CALL_MS).

erpc_call(Node, Fun, Args, Timeout) ->
    try
        {ok, erpc:call(Node, ?MODULE, Fun, Args, Timeout)}
    catch
        error:{erpc, Reason} -> {error, text("~ts cannot be reached: ~0tP", [Node, Reason, 6])};
        Class:Reason -> {error, text("~ts failed: ~tp:~0tP", [Node, Class, Reason, 8])}
    end.

%% Reads Path in full (a background job, `emqx_guard_backups:check/1'): `{ok, Sha256}' or
%% `{error, Line}', with the record of the verdict (`none' when no check reached one).
verify(Path) ->
    case emqx_guard_backups:check(Path) of
        {ok, R = #{result := ok, sha256 := Sha}} -> {{ok, Sha}, R};
        {ok, R = #{result := {error, {_, Detail}}}} -> {{error, Detail}, R};
        {error, {_, Detail}} -> {{error, Detail}, none}
    end.

%% verify/1 of a file in the backup directory, its verdict recorded.
verify_kept(Path) ->
    {Result, Record} = verify(Path),
    ok = emqx_guard_verifications:add([R || R <- [Record], R =/= none]),
    Result.

now_ms() ->
    erlang:system_time(millisecond).

%% The file's mtime in ms, or now when it cannot be read.
mtime_ms(Path) ->
    case file:read_file_info(Path, [{time, posix}]) of
        {ok, #file_info{mtime = MTime}} -> MTime * 1000;
        {error, _} -> now_ms()
    end.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).

bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).
