import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

// Local stand-ins for the model APIs the real agents call. Each plays one scripted turn: the
// first request that offers a shell tool gets a call of that tool running `command`; once the
// tool's result comes back, a final message ends the turn. Side requests (titles, quota checks,
// token counts) get a short text. Everything listens on 127.0.0.1 only.

export interface ModelApi {
  port: number;
  /** Every request seen: method, path, and whether its API key was the expected one. */
  requests: { method: string; path: string; keyOk: boolean }[];
  /** The tool results the agent sent back (what its shell printed), in order. */
  toolResults: string[];
  close(): Promise<void>;
}

interface Scripted {
  /** The API key the agent must present (compared with the host-side value, not a constant). */
  key: string;
  /** The shell command the scripted reply asks the agent to run. */
  command: string;
}

type Json = Record<string, unknown>;
// biome-ignore lint/suspicious/noExplicitAny: the requests are free-form JSON, read field by field
type Body = any;

async function readJson(req: IncomingMessage): Promise<Body> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return {};
  }
}

function sse(res: ServerResponse, events: Json[]): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  for (const e of events) res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  res.end();
}

const flatten = (content: unknown): string =>
  typeof content === "string"
    ? content
    : Array.isArray(content)
      ? content
          .map((c) => (typeof c === "string" ? c : flatten(c?.text ?? c?.content ?? c?.output ?? "")))
          .join("")
      : "";

async function serve(
  handle: (req: IncomingMessage, res: ServerResponse, api: ModelApi) => Promise<void>,
  keyOf: (req: IncomingMessage) => string | undefined,
  key: string,
): Promise<ModelApi> {
  const api: ModelApi = { port: 0, requests: [], toolResults: [], close: async () => {} };
  const server = createServer((req, res) => {
    const keyOk = keyOf(req) === key;
    api.requests.push({ method: req.method ?? "", path: req.url ?? "", keyOk });
    if (!keyOk) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { type: "authentication_error", message: "wrong API key" } }));
      return;
    }
    handle(req, res, api).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  api.port = (server.address() as AddressInfo).port;
  api.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return api;
}

const bearer = (req: IncomingMessage) => /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];

// ---- Anthropic Messages API (Claude Code; OpenClaw's anthropic provider) ----

/** POST /v1/messages, streamed (SSE) or not: a Bash tool_use, then end_turn after its tool_result. */
export function startAnthropicApi(s: Scripted): Promise<ModelApi> {
  return serve(
    async (req, res, api) => {
      const url = req.url ?? "";
      const body = await readJson(req);
      if (req.method === "POST" && url.startsWith("/v1/messages/count_tokens")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 10 }));
        return;
      }
      if (req.method !== "POST" || !url.startsWith("/v1/messages")) {
        res.writeHead(404).end();
        return;
      }
      const messages: Body[] = Array.isArray(body.messages) ? body.messages : [];
      const results = messages.flatMap((m) =>
        Array.isArray(m.content) ? m.content.filter((c: Body) => c?.type === "tool_result") : [],
      );
      const tools: Body[] = Array.isArray(body.tools) ? body.tools : [];
      const shell = tools.find((t) => /^(Bash|bash|exec|shell)$/.test(t?.name));
      let content: Json[];
      let stop: string;
      if (results.length > 0) {
        api.toolResults.push(...results.map((r: Body) => flatten(r.content)));
        content = [{ type: "text", text: "Done: the file is written." }];
        stop = "end_turn";
      } else if (shell) {
        content = [
          { type: "tool_use", id: "toolu_fourwall_1", name: shell.name, input: { command: s.command } },
        ];
        stop = "tool_use";
      } else {
        content = [{ type: "text", text: "ok" }];
        stop = "end_turn";
      }
      const message = {
        id: `msg_fourwall_${api.requests.length}`,
        type: "message",
        role: "assistant",
        model: body.model ?? "stand-in",
        stop_sequence: null,
        usage: { input_tokens: 10, output_tokens: 10 },
      };
      if (!body.stream) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ...message, content, stop_reason: stop }));
        return;
      }
      const events: Json[] = [
        { type: "message_start", message: { ...message, content: [], stop_reason: null } },
      ];
      content.forEach((block, index) => {
        if (block.type === "tool_use") {
          events.push(
            { type: "content_block_start", index, content_block: { ...block, input: {} } },
            {
              type: "content_block_delta",
              index,
              delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) },
            },
          );
        } else {
          events.push(
            { type: "content_block_start", index, content_block: { type: "text", text: "" } },
            { type: "content_block_delta", index, delta: { type: "text_delta", text: block.text } },
          );
        }
        events.push({ type: "content_block_stop", index });
      });
      events.push(
        {
          type: "message_delta",
          delta: { stop_reason: stop, stop_sequence: null },
          usage: { output_tokens: 10 },
        },
        { type: "message_stop" },
      );
      sse(res, events);
    },
    (req) => (req.headers["x-api-key"] as string | undefined) ?? bearer(req),
    s.key,
  );
}

// ---- OpenAI Responses API (Codex) and Chat Completions (OpenAI-compatible providers) ----

/** The arguments a shell-like function tool takes, by the name Codex gives it. */
function shellArguments(name: string, command: string): Json {
  if (name === "shell") return { command: ["bash", "-lc", command] };
  if (name === "exec_command") return { cmd: command };
  return { command };
}

const SHELL_TOOLS = ["exec_command", "shell_command", "shell", "bash", "exec", "Bash"];

const toolName = (t: Body): string | undefined => t?.name ?? t?.function?.name;

/** POST /v1/responses (SSE): a function call of the shell tool, then a final message; also /v1/chat/completions. */
export function startOpenAiApi(s: Scripted): Promise<ModelApi> {
  return serve(
    async (req, res, api) => {
      const url = req.url ?? "";
      const body = await readJson(req);
      if (req.method === "GET" && url.startsWith("/v1/models")) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: "gpt-stand-in", object: "model" }] }));
        return;
      }
      const tools: Body[] = Array.isArray(body.tools) ? body.tools : [];
      const names = tools.map(toolName).filter((n): n is string => typeof n === "string");
      const shell = SHELL_TOOLS.find((n) => names.includes(n));
      if (process.env.FOURWALL_DEBUG_STANDIN)
        console.error(
          "tools:",
          JSON.stringify(body.tools?.map((t: Body) => t.name)),
          JSON.stringify(body.input, (k, v) =>
            k === "description" || k === "text" || k === "parameters" ? undefined : v,
          ).slice(0, 1000),
        );
      if (req.method === "POST" && url.startsWith("/v1/responses")) {
        const input: Body[] = Array.isArray(body.input) ? body.input : [];
        const outputs = input.filter(
          (i) => i?.type === "function_call_output" || i?.type === "custom_tool_call_output",
        );
        let item: Json;
        if (outputs.length > 0) {
          api.toolResults.push(...outputs.map((o) => flatten(o.output)));
          item = {
            type: "message",
            id: "msg_fourwall",
            role: "assistant",
            status: "completed",
            content: [{ type: "output_text", text: "Done: the file is written.", annotations: [] }],
          };
        } else if (shell) {
          item = {
            type: "function_call",
            id: "fc_fourwall",
            call_id: "call_fourwall_1",
            name: shell,
            arguments: JSON.stringify(shellArguments(shell, s.command)),
            status: "completed",
          };
        } else {
          item = {
            type: "message",
            id: "msg_fourwall",
            role: "assistant",
            status: "completed",
            content: [{ type: "output_text", text: "ok", annotations: [] }],
          };
        }
        const response = {
          id: `resp_fourwall_${api.requests.length}`,
          object: "response",
          created_at: Math.floor(Date.now() / 1000),
          model: body.model ?? "stand-in",
          status: "completed",
          output: [item],
          usage: {
            input_tokens: 10,
            output_tokens: 10,
            total_tokens: 20,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens_details: { reasoning_tokens: 0 },
          },
        };
        sse(res, [
          { type: "response.created", response: { ...response, status: "in_progress", output: [] } },
          { type: "response.output_item.added", output_index: 0, item },
          { type: "response.output_item.done", output_index: 0, item },
          { type: "response.completed", response },
        ]);
        return;
      }
      if (req.method === "POST" && url.startsWith("/v1/chat/completions")) {
        const messages: Body[] = Array.isArray(body.messages) ? body.messages : [];
        const results = messages.filter((m) => m?.role === "tool");
        let message: Json;
        let finish: string;
        if (results.length > 0) {
          api.toolResults.push(...results.map((m) => flatten(m.content)));
          message = { role: "assistant", content: "Done: the file is written." };
          finish = "stop";
        } else if (shell) {
          message = {
            role: "assistant",
            content: null,
            tool_calls: [
              {
                id: "call_fourwall_1",
                type: "function",
                function: { name: shell, arguments: JSON.stringify(shellArguments(shell, s.command)) },
              },
            ],
          };
          finish = "tool_calls";
        } else {
          message = { role: "assistant", content: "ok" };
          finish = "stop";
        }
        const base = {
          id: "chatcmpl_fourwall",
          created: Math.floor(Date.now() / 1000),
          model: body.model ?? "stand-in",
        };
        if (!body.stream) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(
            JSON.stringify({
              ...base,
              object: "chat.completion",
              choices: [{ index: 0, message, finish_reason: finish }],
              usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
            }),
          );
          return;
        }
        res.writeHead(200, { "content-type": "text/event-stream" });
        const delta = message.tool_calls
          ? {
              role: "assistant",
              tool_calls: (message.tool_calls as Json[]).map((c, index) => ({ index, ...c })),
            }
          : { role: "assistant", content: message.content };
        for (const choice of [
          { index: 0, delta, finish_reason: null },
          { index: 0, delta: {}, finish_reason: finish },
        ])
          res.write(
            `data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [choice] })}\n\n`,
          );
        res.write(
          `data: ${JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [], usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 } })}\n\n`,
        );
        res.end("data: [DONE]\n\n");
        return;
      }
      res.writeHead(404).end();
    },
    bearer,
    s.key,
  );
}
