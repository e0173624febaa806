%% @doc The verification records of this node's backups: the one owner of what the plugin knows
%% about which files verified (a gen_server, `<data_dir>/emqx_guard/verified.eterm').
%%
%% A record is the NIF's (`emqx_guard_nif:record()'): the verdict of one full read of a file,
%% tied to that file's identity (name, size, mtime in ns, inode, device). Retention and the
%% listing pass the records in (`records/0') and read only files that are unknown or changed;
%% everything that verifies hands its records back (`add/1'): the run's new export (and a failed
%% run's tarball that verifies, `emqx_guard_export_files'), retention, the listing, copies
%% received from other nodes, what interrupted exports left (`emqx_guard_leftovers'),
%% `guard backup_verify'.
%%
%% A record may also hold `made_at', when the backup was made (Unix ms: the start of the run that
%% exported it, told by the run and by a copy from another node); retention counts its periods
%% from it (`emqx_guard_retention'). The NIF ignores the key. A later check of the same file keeps
%% the `made_at' of the earlier record.
%%
%% One record per file name, the latest check wins. The set is bounded by what is in the backup
%% directory: records of names no longer there are dropped whenever records are added and at
%% start. A damaged file gives no records (every backup is read once more) and a warning.
%%
%% `records/0' and `add/1' work without the server (e.g. a run started outside the plugin):
%% then there are no records and nothing is kept.
-module(emqx_guard_verifications).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, records/0, add/1, file/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(SERVER, ?MODULE).
%% The records file's format (`emqx_guard_store').
-define(FORMAT, #{tag => ?MODULE, version => 1}).
-define(CALL_TIMEOUT, 30000).

%%--------------------------------------------------------------------------------------------
%% API
%%--------------------------------------------------------------------------------------------

%% @doc Starts the owner, registered as `emqx_guard_verifications', with the records of the file.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc The records held, one per backup file name (none while the server is not running).
-spec records() -> [emqx_guard_nif:record()].
records() ->
    try
        gen_server:call(?SERVER, records, ?CALL_TIMEOUT)
    catch
        exit:{noproc, _} -> []
    end.

%% @doc Keeps Records (replacing older ones of the same names), drops the records of files that
%% are gone (also when Records is empty), and saves what changed.
-spec add([emqx_guard_nif:record()]) -> ok.
add(Records) when is_list(Records) ->
    try
        gen_server:call(?SERVER, {add, Records}, ?CALL_TIMEOUT)
    catch
        exit:{noproc, _} -> ok
    end.

%% @doc The records file.
-spec file() -> file:filename_all().
file() ->
    emqx_guard_store:path("verified.eterm").

%%--------------------------------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------------------------------

%% @private
init([]) ->
    {ok, bounded(load())}.

%% @private
handle_call(records, _From, Held) ->
    {reply, maps:values(Held), Held};
handle_call({add, Records}, _From, Held0) ->
    Held = bounded(lists:foldl(fun put_newer/2, Held0, [R || R <- Records, valid(R)])),
    case Held =:= Held0 of
        true -> ok;
        false -> save(Held)
    end,
    {reply, ok, Held};
handle_call(Request, _From, Held) ->
    {reply, {error, {unknown_call, Request}}, Held}.

%% @private
handle_cast(_Msg, Held) ->
    {noreply, Held}.

%% @private
handle_info(_Msg, Held) ->
    {noreply, Held}.

%%--------------------------------------------------------------------------------------------

%% The later check of a file wins (a listing that started before a run's verify may finish after it).
put_newer(R = #{name := Name, verified_at := At}, Held) ->
    case Held of
        #{Name := #{verified_at := Known}} when Known > At -> Held;
        #{Name := #{made_at := Made}} when not is_map_key(made_at, R) -> Held#{Name => R#{made_at => Made}};
        _ -> Held#{Name => R}
    end.

%% Only the records of files in the backup directory; all of them when it cannot be listed.
bounded(Held) ->
    case emqx_guard_backups:names() of
        Names when is_list(Names) -> maps:with(Names, Held);
        {error, _} -> Held
    end.

load() ->
    Path = file(),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, Records} when is_list(Records) ->
            Good = [R || R <- Records, valid(R)],
            case length(Records) - length(Good) of
                0 ->
                    ok;
                Dropped ->
                    ?LOG_WARNING(#{
                        msg => emqx_guard_verifications_damaged, path => Path, dropped => Dropped, action => verify_again
                    })
            end,
            lists:foldl(fun put_newer/2, #{}, Good);
        none ->
            #{};
        %% a newer plugin's file: said by the store
        newer ->
            #{};
        Other ->
            ?LOG_WARNING(#{
                msg => emqx_guard_verifications_damaged, path => Path, reason => damage(Other), action => verify_again
            }),
            #{}
    end.

damage({ok, _}) -> unexpected_content;
damage({damaged, Reason}) -> Reason.

save(Held) ->
    Records = lists:sort(maps:values(Held)),
    case emqx_guard_store:save(file(), ?FORMAT, Records) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_verifications_not_saved, reason => emqx_guard_outcome:format_error(Why)})
    end.

%% What the NIF reads back from a record (it refuses the whole list for one bad record).
valid(R = #{name := N, size := S, mtime_ns := M, inode := I, dev := D, verified_at := At, result := Result}) ->
    is_integer(maps:get(made_at, R, 0)) andalso is_binary(N) andalso is_integer(S) andalso S >= 0 andalso is_integer(M) andalso is_integer(I) andalso
        I >= 0 andalso is_integer(D) andalso D >= 0 andalso is_integer(At) andalso valid_result(Result);
valid(_) ->
    false.

valid_result(ok) -> true;
valid_result({error, {Reason, Detail}}) -> is_atom(Reason) andalso is_binary(Detail);
valid_result(_) -> false.
