/** The hello-world function every cold-start and memory figure is compared with. */
export default {
  fetch(_request: Request): Promise<Response> {
    return Promise.resolve(
      new Response(JSON.stringify({ hello: "world" }), {
        headers: { "content-type": "application/json" },
      }),
    );
  },
};
