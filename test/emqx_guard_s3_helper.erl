%% @doc Test helper: a real S3 server (s3s-fs, SigV4 on) on 127.0.0.1 for the off-site suites, with
%% a fresh root holding the bucket `backups', and the test-only age keys.
-module(emqx_guard_s3_helper).

-export([all_objects/1, start/1, start/2, stop/1, config/1, settings_args/1, object_file/2, objects/1,
         access_key/0, secret_key/0, binary/0]).

-define(ACCESS, <<"guard-ct-access">>).
-define(SECRET, <<"guard-ct-SECRET/key+0123456789">>).

-type server() :: #{port := inet:port_number(), root := file:filename(), port_ref := port(), os_pid := integer()}.
-export_type([server/0]).

-spec access_key() -> binary().
access_key() -> ?ACCESS.

-spec secret_key() -> binary().
secret_key() -> ?SECRET.

%% @doc The s3s-fs binary, or `false' when it is not installed (`make test-deps' installs it).
-spec binary() -> string() | false.
binary() ->
    Home = os:getenv("HOME", "/root"),
    Cands = [os:getenv("S3S_FS", ""),
             filename:join([os:getenv("CARGO_HOME", filename:join(Home, ".cargo")), "bin", "s3s-fs"]),
             filename:join([Home, ".cargo", "bin", "s3s-fs"])],
    case [C || C <- Cands, C =/= "", filelib:is_regular(C)] of
        [Bin | _] -> Bin;
        [] -> os:find_executable("s3s-fs")
    end.

%% @doc Starts s3s-fs with its root under Dir, on a free port.
-spec start(file:filename()) -> server().
start(Dir) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    start(Dir, Port).

%% @doc Starts s3s-fs with its root under Dir on Port (again, after `stop/1').
-spec start(file:filename(), inet:port_number()) -> server().
start(Dir, Port) ->
    Bin = case binary() of
        false -> error("s3s-fs (the S3 server of the off-site tests) is not installed: run make test-deps");
        Found -> Found
    end,
    Root = filename:join(Dir, "s3"),
    ok = filelib:ensure_dir(filename:join([Root, "backups", "x"])),
    P = open_port({spawn_executable, Bin},
                  [{args, ["--host", "127.0.0.1", "--port", integer_to_list(Port),
                           "--access-key", binary_to_list(?ACCESS),
                           "--secret-key", binary_to_list(?SECRET), Root]},
                   exit_status, stderr_to_stdout]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    wait_until(fun() ->
        case gen_tcp:connect({127, 0, 0, 1}, Port, [], 100) of
            {ok, S} -> gen_tcp:close(S), true;
            _ -> false
        end
    end, 500),
    #{port => Port, root => Root, port_ref => P, os_pid => OsPid}.

%% @doc Stops the server (its files stay).
-spec stop(server()) -> ok.
stop(#{os_pid := OsPid, port_ref := P, port := Port}) ->
    _ = os:cmd("kill " ++ integer_to_list(OsPid) ++ " 2>/dev/null"),
    try port_close(P) of
        _ -> ok
    catch
        error:badarg -> ok
    end,
    wait_until(fun() ->
        case gen_tcp:connect({127, 0, 0, 1}, Port, [], 100) of
            {ok, S} -> gen_tcp:close(S), false;
            _ -> true
        end
    end, 200),
    ok.

%% @doc The NIF's off-site Config for the server (bucket `backups', prefix `ct').
-spec config(server()) -> map().
config(#{port := Port}) ->
    #{bucket => <<"backups">>, prefix => <<"ct">>, region => <<"us-east-1">>,
      endpoint => iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]),
      access_key => ?ACCESS, secret_key => ?SECRET, path_style => true,
      max_retries => 0, connect_timeout_ms => 2000, timeout_ms => 20000}.

%% @doc `guard backup_remote s3 ...' arguments for the server.
-spec settings_args(server()) -> [string()].
settings_args(#{port := Port}) ->
    ["s3", "bucket=backups", "prefix=ct", "region=us-east-1",
     "endpoint=http://127.0.0.1:" ++ integer_to_list(Port),
     "access_key=" ++ binary_to_list(?ACCESS), "secret_key=" ++ binary_to_list(?SECRET), "path_style=on"].

%% @doc The file that holds the object Key of the bucket `backups'.
-spec object_file(server(), binary() | string()) -> file:filename().
object_file(#{root := Root}, Key) ->
    filename:join([Root, "backups", Key]).

%% @doc The backups' objects under the bucket's prefix dir `ct' (sorted): their plugins
%% companions (`….plugins.tgz[.age]', uploaded with them) are `all_objects/1''s.
-spec objects(server()) -> [string()].
objects(Server) ->
    [N || N <- all_objects(Server), string:find(N, ".plugins.tgz") =:= nomatch].

%% @doc The names of the files under the bucket's prefix dir `ct' named `emqx-export-…' (sorted).
-spec all_objects(server()) -> [string()].
all_objects(#{root := Root}) ->
    case file:list_dir(filename:join([Root, "backups", "ct"])) of
        {ok, Names} -> lists:sort([N || N <- Names, lists:prefix("emqx-export-", N)]);
        {error, enoent} -> []
    end.

wait_until(Fun, 0) ->
    true = Fun();
wait_until(Fun, N) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(10), wait_until(Fun, N - 1)
    end.
